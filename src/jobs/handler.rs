//! The contract between the queue and the work: a [`Handler`] per job kind, what it is given
//! ([`JobContext`]) and how it reports failure ([`JobError`]). The runtime that drives handlers is
//! [`super::runtime`].

use crate::db::Pool;

use super::Job;
use crate::db::{Access, Credentials, TenantContext, TenantTx, TxOptions};
use crate::error::{AppError, AppResult};

/// Why a run did not complete.
#[derive(Debug, Clone)]
pub enum JobError {
    /// Worth another attempt (a timeout, a provider's 5xx, invalid model output).
    Retry(String),
    /// Will fail the same way again: discard now.
    Fail(String),
    /// The run lost its job (lease expired and claimed again); it wrote nothing.
    Fenced,
}

/// What a failed attempt records (on the job, and on an analysis as `TicketAnalysis.error`) when its
/// cause was internal: the cause itself (SQL, driver text) goes to the log only, in the job's span.
pub const INTERNAL_FAILURE: &str = "internal error (details in the server log)";

impl From<AppError> for JobError {
    fn from(err: AppError) -> Self {
        if let Some(cause) = err.cause() {
            tracing::warn!(error = format!("{cause:#}"), "job attempt failed");
        }
        match err {
            AppError::Internal(_) => JobError::Retry(INTERNAL_FAILURE.to_owned()),
            // An outage or a timeout says so ("the database is unavailable; retry shortly").
            other => JobError::Retry(other.to_string()),
        }
    }
}

/// What handlers return (the futures crate's boxed, sendable future).
pub use futures_util::future::BoxFuture;

/// What a handler gets to do its work.
#[derive(Clone)]
pub struct JobContext {
    pub pool: Pool,
    pub statement_timeout_ms: u64,
}

impl JobContext {
    /// Opens a transaction of the job's organization as the server's own work (`app.role = system`).
    pub async fn tenant_tx(&self, job: &Job) -> AppResult<TenantTx> {
        let request_id = format!("job:{}:{}", job.id, job.attempt);
        TenantTx::begin(
            &self.pool,
            &Credentials::Trusted(TenantContext::system(job.org_id)),
            TxOptions {
                access: Access::ReadWrite,
                statement_timeout_ms: self.statement_timeout_ms,
                request_id: Some(&request_id),
                client_request_id: None,
            },
        )
        .await
    }

    /// [`JobContext::tenant_tx`] with this run of `job` locked for finishing ([`super::lock_run`]);
    /// `Err(Fenced)`, with the transaction rolled back, when the run lost its job.
    pub async fn locked_tx(&self, job: &Job) -> Result<TenantTx, JobError> {
        let tx = self.tenant_tx(job).await?;
        if !super::lock_run(&tx, job).await? {
            tx.rollback().await?;
            return Err(JobError::Fenced);
        }
        Ok(tx)
    }

    /// Completes a job whose work wrote nothing to the database. No organization write lock: the
    /// fenced UPDATE is the only write, and `jobs` has no write-lock trigger, so nothing waits for the
    /// organization's writers. `Err(Fenced)` when the run lost its job.
    pub async fn finish(&self, job: &Job) -> Result<(), JobError> {
        let tx = self.tenant_tx(job).await?;
        if !super::complete(&tx, job).await? {
            tx.rollback().await?;
            return Err(JobError::Fenced);
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The work of one job kind. `run` must finish the job in its final tenant transaction with
/// [`super::complete`] (or [`super::lock_run`] first), so that the job and its effects commit together.
pub trait Handler: Send + Sync + 'static {
    fn kind(&self) -> &'static str;

    fn run<'a>(&'a self, ctx: &'a JobContext, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>>;

    /// Called in the job's tenant transaction that records a failed run (`discarded` true when it will
    /// not run again), to keep the handler's own records in step. The default does nothing.
    fn failed<'a>(
        &'a self,
        _tx: &'a TenantTx,
        _job: &'a Job,
        _error: &'a str,
        _discarded: bool,
    ) -> BoxFuture<'a, AppResult<()>> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_causes_stay_in_the_log_and_user_errors_keep_their_text() {
        let internal: AppError = anyhow::anyhow!("relation \"tickets\" does not exist").into();
        let JobError::Retry(recorded) = JobError::from(internal) else {
            panic!("an internal error is retried");
        };
        assert_eq!(recorded, INTERNAL_FAILURE);
        let JobError::Retry(recorded) = JobError::from(AppError::NotFound("ticket")) else {
            panic!("retried");
        };
        assert_eq!(recorded, "ticket not found");
    }
}

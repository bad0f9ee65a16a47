//! From a ticket to its analysis.
//!
//! 1. [`request_analysis`], in the caller's transaction (`createTicket`, `reanalyzeTicket`): holds the
//!    model's price in credits, enqueues an `analyze_ticket` job and records a `pending` analysis — all
//!    or nothing with the ticket. Too few credits: the analysis is `insufficient_credits` and nothing is
//!    queued; [`queue_resume_if_waiting`] (after grants) queues a `resume_analyses` job that retries
//!    them in order.
//! 2. [`AnalyzeTicket`], in a worker: marks the analysis running (short transaction), calls the model
//!    and the embedder with no transaction open, stores the vector in Qdrant (idempotent: the point id
//!    is the ticket id), then in one transaction of the ticket's organization completes the job
//!    (fenced by attempt), captures the actual cost, records the result and applies the priority. A
//!    stale run cannot complete, so a ticket is charged once whatever happens to workers.
//! 3. A run that fails for good releases the hold and records the error.
//!
//! The analysis id is the idempotency key that ties it together: the hold's ledger key is
//! `hold:analysis:<id>`, the job carries the id, and every write is in the audit trail.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::repo::{self, AnalysisRow, AnalysisStatus};
use super::{Ai, ProviderError};
use crate::billing::repo as billing;
use crate::db::TenantTx;
use crate::error::{AppError, AppResult};
use crate::jobs::worker::{BoxFuture, Handler, JobContext, JobError};
use crate::jobs::{self, Job, NewJob};
use crate::support::repo::{self as support, TicketRow};

pub const ANALYZE_TICKET: &str = "analyze_ticket";
pub const RESUME_ANALYSES: &str = "resume_analyses";
pub const SYNC_TICKET_VECTOR: &str = "sync_ticket_vector";

/// Identifies a ticket version: its title and description.
pub fn content_hash(ticket: &TicketRow) -> String {
    let mut h = Sha256::new();
    h.update(ticket.title.as_bytes());
    h.update([0]);
    h.update(ticket.description.as_bytes());
    hex::encode(h.finalize())
}

fn hold_key(analysis_id: Uuid) -> String {
    format!("analysis:{analysis_id}")
}

/// What [`hold_and_enqueue`] did.
enum Queued {
    /// Credits held and a job enqueued: (credits held, hold id, job id).
    Now(i64, Uuid, Uuid),
    /// A job for this ticket version is already queued or running (for this analysis id).
    Already(Option<Uuid>),
}

/// Holds credits and enqueues the analysis job; `Err(InsufficientCredits)` leaves the transaction
/// usable and changes nothing. Called with the organization's write lock held, so the check for a
/// queued twin and the enqueue cannot race.
async fn hold_and_enqueue(
    tx: &TenantTx,
    ai: &Ai,
    analysis_id: Uuid,
    ticket_id: Uuid,
    content_hash: &str,
) -> AppResult<Queued> {
    let unique_key = format!("{ticket_id}:{content_hash}");
    // Checked before holding: a twin's job would not carry (and never settle) this hold.
    if let Some((_, args)) = jobs::active(tx, ANALYZE_TICKET, &unique_key).await? {
        let analysis = args
            .get("analysis_id")
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse().ok());
        return Ok(Queued::Already(analysis));
    }
    let price = ai.price();
    let hold = billing::hold(
        tx,
        price.credits,
        &hold_key(analysis_id),
        Some(&format!("ticket:{ticket_id}")),
    )
    .await?;
    let job = jobs::enqueue(
        tx,
        &NewJob {
            max_attempts: ai.job_max_attempts,
            unique_key: Some(unique_key),
            ..NewJob::new(
                ANALYZE_TICKET,
                json!({ "analysis_id": analysis_id, "ticket_id": ticket_id, "hold_id": hold.id }),
            )
        },
    )
    .await?;
    match job {
        jobs::Enqueued::New(job) => Ok(Queued::Now(price.credits, hold.id, job)),
        // Cannot happen under the write lock; failing rolls the hold back with the transaction.
        jobs::Enqueued::Existing(_) => {
            Err(anyhow::anyhow!("analysis job of ticket {ticket_id} was queued twice").into())
        }
    }
}

/// Requests an analysis of `ticket` as it is now, in the caller's transaction. An analysis of the same
/// version still queued, running or waiting for credits is returned instead of a second one (never
/// paid twice).
pub async fn request_analysis(
    tx: &TenantTx,
    ai: &Ai,
    ticket: &TicketRow,
    reason: &str,
) -> AppResult<AnalysisRow> {
    // Checked and written under the organization's write lock, so two requests do not both pass the
    // check (the order every writer of the organization takes its locks in).
    tx.query_one("select app.lock_org_for_writes(app.current_org_id())", &[])
        .await?;
    // Read again under the lock: the version analysed is the one current now.
    let ticket = support::ticket(tx, ticket.id)
        .await?
        .ok_or(AppError::NotFound("ticket"))?;
    let hash = content_hash(&ticket);
    if let Some(open) = repo::open_for_version(tx, ticket.id, &hash).await? {
        return Ok(open);
    }
    let id = Uuid::new_v4();
    let (status, held, hold_id, job_id) = match hold_and_enqueue(tx, ai, id, ticket.id, &hash).await
    {
        Ok(Queued::Now(held, hold, job)) => (AnalysisStatus::Pending, held, Some(hold), Some(job)),
        Ok(Queued::Already(Some(twin))) => {
            if let Some(open) = repo::analysis(tx, twin).await? {
                return Ok(open);
            }
            return Err(anyhow::anyhow!("queued analysis {twin} is missing").into());
        }
        Ok(Queued::Already(None)) => {
            return Err(anyhow::anyhow!("a queued analysis job has no analysis id").into());
        }
        Err(AppError::InsufficientCredits { needed, available }) => {
            tracing::info!(ticket = %ticket.id, needed, available, "analysis waits for credits");
            (AnalysisStatus::InsufficientCredits, 0, None, None)
        }
        Err(err) => return Err(err),
    };
    repo::insert(
        tx,
        &repo::NewAnalysis {
            id,
            ticket_id: ticket.id,
            status,
            reason,
            content_hash: &hash,
            provider: ai.provider(),
            model: ai.model(),
            credits_held: held,
            hold_id,
            job_id,
        },
    )
    .await
}

/// Queues a `resume_analyses` job when analyses of the organization wait for credits (call after
/// credits were added).
pub async fn queue_resume_if_waiting(tx: &TenantTx) -> AppResult<()> {
    if repo::any_waiting_for_credits(tx).await? {
        jobs::enqueue(
            tx,
            &NewJob {
                unique_key: Some("resume".to_owned()),
                priority: 3,
                ..NewJob::new(RESUME_ANALYSES, json!({}))
            },
        )
        .await?;
    }
    Ok(())
}

/// Queues a refresh of the ticket's vector payload (status, workspace) when vectors live in Qdrant.
pub async fn queue_vector_sync(tx: &TenantTx, ai: &Ai, ticket_id: Uuid) -> AppResult<()> {
    if ai.index.is_some() {
        jobs::enqueue(
            tx,
            &NewJob {
                unique_key: Some(ticket_id.to_string()),
                ..NewJob::new(SYNC_TICKET_VECTOR, json!({ "ticket_id": ticket_id }))
            },
        )
        .await?;
    }
    Ok(())
}

fn arg_uuid(job: &Job, name: &str) -> Result<Uuid, JobError> {
    job.args
        .get(name)
        .and_then(|v| v.as_str())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| JobError::Fail(format!("job argument {name} is missing or not a uuid")))
}

fn provider_error(err: ProviderError) -> JobError {
    match err {
        ProviderError::Transient(m) => JobError::Retry(m),
        ProviderError::Permanent(m) => JobError::Fail(m),
    }
}

/// The handlers of the AI pipeline, for a worker.
pub fn handlers(ai: &Arc<Ai>) -> Vec<Arc<dyn Handler>> {
    vec![
        Arc::new(AnalyzeTicket { ai: ai.clone() }),
        Arc::new(ResumeAnalyses { ai: ai.clone() }),
        Arc::new(SyncTicketVector { ai: ai.clone() }),
    ]
}

/// Completes an analysis job that has nothing (more) to record, giving back `hold` when there is one.
async fn close_without_result(tx: TenantTx, job: &Job, hold: Option<Uuid>) -> Result<(), JobError> {
    if let Some(hold) = hold {
        billing::release(&tx, hold).await?;
    }
    jobs::complete(&tx, job).await?;
    tx.commit().await?;
    Ok(())
}

/// Runs one analysis.
pub struct AnalyzeTicket {
    pub ai: Arc<Ai>,
}

impl AnalyzeTicket {
    async fn run_job(&self, ctx: &JobContext, job: &Job) -> Result<(), JobError> {
        let analysis_id = arg_uuid(job, "analysis_id")?;
        let started = Instant::now();

        // 1. Still ours and still to do? Mark it running.
        let tx = ctx.locked_tx(job).await?;
        let analysis = repo::analysis(&tx, analysis_id).await?;
        let ticket = match &analysis {
            Some(a) => support::ticket(&tx, a.ticket_id).await?,
            None => None,
        };
        let (Some(analysis), Some(ticket)) = (analysis, ticket) else {
            // The ticket (and with it the analysis) is gone: give the credits back, nothing to do.
            return close_without_result(tx, job, arg_uuid(job, "hold_id").ok()).await;
        };
        if analysis.status.is_final() {
            return close_without_result(tx, job, None).await;
        }
        repo::mark_running(&tx, analysis_id, job.attempt).await?;
        tx.commit().await?;
        drop(tx);

        // 2. The model and the embedder, with no transaction (and no pooled connection) held.
        let result = self
            .ai
            .analyze(&ticket.title, &ticket.description)
            .await
            .map_err(provider_error)?;
        let mut embedding_tokens = None;
        if let Some(index) = &self.ai.index {
            let embedded = self
                .ai
                .embed(&[format!("{}\n{}", ticket.title, ticket.description)])
                .await
                .map_err(provider_error)?;
            embedding_tokens = embedded.tokens;
            let vector = embedded
                .vectors
                .into_iter()
                .next()
                .ok_or_else(|| JobError::Retry("the embedder returned no vector".to_owned()))?;
            index
                .upsert(job.org_id, &ticket, vector)
                .await
                .map_err(|e| {
                    JobError::Retry(format!("storing the vector in Qdrant failed: {e:#}"))
                })?;
        }

        // 3. One transaction: the job, the charge, the result and the ticket's priority.
        // (Fenced when our lease expired and another worker took over: we write nothing.)
        let tx = ctx.locked_tx(job).await?;
        if repo::analysis(&tx, analysis_id).await?.is_none() {
            // The ticket was deleted while the model worked: nothing to record, nothing to charge.
            return close_without_result(tx, job, analysis.hold_id).await;
        }
        let tokens = match (result.prompt_tokens, result.completion_tokens) {
            (None, None) => None,
            (p, c) => Some(u64::from(p.unwrap_or(0)) + u64::from(c.unwrap_or(0))),
        };
        let charge = self.ai.prices.of(&analysis.model).charge(tokens);
        let charged = match analysis.hold_id {
            Some(hold) => match billing::capture(&tx, hold, charge).await?.state {
                billing::HoldState::Captured { charged } => charged,
                _ => 0,
            },
            None => 0,
        };
        repo::record_done(
            &tx,
            analysis_id,
            &repo::Done {
                analysis: &result,
                provider: self.ai.provider(),
                model: self.ai.model(),
                embedding_model: self.ai.index.as_ref().map(|_| self.ai.embedding_model()),
                embedding_tokens,
                credits_charged: charged,
                duration_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
            },
        )
        .await?;
        support::apply_ai_priority(&tx, ticket.id, result.priority).await?;
        jobs::complete(&tx, job).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Handler for AnalyzeTicket {
    fn kind(&self) -> &'static str {
        ANALYZE_TICKET
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.run_job(ctx, job))
    }

    fn failed<'a>(
        &'a self,
        tx: &'a TenantTx,
        job: &'a Job,
        error: &'a str,
        discarded: bool,
    ) -> BoxFuture<'a, AppResult<()>> {
        Box::pin(async move {
            let Ok(analysis_id) = arg_uuid(job, "analysis_id") else {
                return Ok(());
            };
            let message = if discarded {
                format!("analysis failed after {} attempt(s): {error}", job.attempt)
            } else {
                format!("attempt {} failed, will retry: {error}", job.attempt)
            };
            repo::record_failure(tx, analysis_id, &message, discarded).await?;
            if discarded && let Ok(hold) = arg_uuid(job, "hold_id") {
                billing::release(tx, hold).await?;
            }
            Ok(())
        })
    }
}

/// Queues the analyses that waited for credits, oldest first, while credits last.
pub struct ResumeAnalyses {
    pub ai: Arc<Ai>,
}

/// Analyses resumed per job run (a longer backlog queues another run).
const RESUME_BATCH: i64 = 200;

impl ResumeAnalyses {
    async fn run_job(&self, ctx: &JobContext, job: &Job) -> Result<(), JobError> {
        let tx = ctx.locked_tx(job).await?;
        let waiting = repo::waiting_for_credits(&tx, RESUME_BATCH).await?;
        let mut resumed = 0usize;
        let mut exhausted = false;
        for analysis in &waiting {
            let Some(ticket) = support::ticket(&tx, analysis.ticket_id).await? else {
                continue;
            };
            let hash = content_hash(&ticket);
            match hold_and_enqueue(&tx, &self.ai, analysis.id, ticket.id, &hash).await {
                Ok(Queued::Now(held, hold, job_id)) => {
                    repo::mark_queued(
                        &tx,
                        analysis.id,
                        &repo::Queued {
                            content_hash: &hash,
                            provider: self.ai.provider(),
                            model: self.ai.model(),
                            credits_held: held,
                            hold_id: hold,
                            job_id,
                        },
                    )
                    .await?;
                    resumed += 1;
                }
                Ok(Queued::Already(twin)) => {
                    let twin = twin.map(|t| t.to_string()).unwrap_or_default();
                    repo::record_failure(
                        &tx,
                        analysis.id,
                        &format!("superseded by analysis {twin} of the same ticket version"),
                        true,
                    )
                    .await?;
                }
                Err(AppError::InsufficientCredits { .. }) => {
                    exhausted = true;
                    break;
                }
                Err(err) => return Err(err.into()),
            }
        }
        jobs::complete(&tx, job).await?;
        // More waiting than one batch: another run picks up the rest (after this one commits).
        if !exhausted && waiting.len() as i64 == RESUME_BATCH {
            queue_resume_if_waiting(&tx).await?;
        }
        tx.commit().await?;
        tracing::info!(org = %job.org_id, resumed, waiting = waiting.len(), "resumed analyses waiting for credits");
        Ok(())
    }
}

impl Handler for ResumeAnalyses {
    fn kind(&self) -> &'static str {
        RESUME_ANALYSES
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.run_job(ctx, job))
    }
}

/// Keeps a ticket's Qdrant payload in step with the ticket (or deletes its point when it is gone).
pub struct SyncTicketVector {
    pub ai: Arc<Ai>,
}

impl SyncTicketVector {
    async fn run_job(&self, ctx: &JobContext, job: &Job) -> Result<(), JobError> {
        let ticket_id = arg_uuid(job, "ticket_id")?;
        let tx = ctx.tenant_tx(job).await?;
        let ticket = support::ticket(&tx, ticket_id).await?;
        tx.commit().await?;
        drop(tx);
        if let Some(index) = &self.ai.index {
            let synced = match &ticket {
                Some(t) => index.update_payload(job.org_id, t).await,
                None => index.delete(ticket_id).await,
            };
            synced.map_err(|e| JobError::Retry(format!("Qdrant: {e:#}")))?;
        }
        finish(ctx, job).await
    }
}

/// Completes a job whose work wrote nothing to the database. No organization write lock: the fenced
/// UPDATE is the only write, and `jobs` has no write-lock trigger, so nothing waits for the
/// organization's writers.
pub async fn finish(ctx: &JobContext, job: &Job) -> Result<(), JobError> {
    let tx = ctx.tenant_tx(job).await?;
    if !jobs::complete(&tx, job).await? {
        tx.rollback().await?;
        return Err(JobError::Fenced);
    }
    tx.commit().await?;
    Ok(())
}

impl Handler for SyncTicketVector {
    fn kind(&self) -> &'static str {
        SYNC_TICKET_VECTOR
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.run_job(ctx, job))
    }
}

//! The job side of the pipeline (the request side is [`super::request`]).
//!
//! - [`AnalyzeTicket`] runs one analysis in three steps: a short transaction marks it running; the
//!   model, the embedder and the Qdrant upsert are called with no transaction or connection held;
//!   one transaction, fenced by the run's attempt, completes the job, captures the actual cost
//!   (releasing the rest of the hold), records the result and applies the priority.
//!   When the embedder or Qdrant fails, the analysis completes anyway and that transaction queues an
//!   `upsert_ticket_vector` job instead, so the vector is stored once Qdrant is back.
//! - [`ResumeAnalyses`] holds for and queues the analyses that waited for credits, oldest first.
//! - [`SyncTicketVector`] keeps a ticket's Qdrant payload in step with the ticket.
//! - [`UpsertTicketVector`] embeds a ticket's current text and stores it in Qdrant (after an outage,
//!   or an edit of the text).

use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::repo;
use super::request::{Queued, content_hash, hold_and_enqueue, queue_vector_upsert};
use super::{Ai, ProviderError};
use crate::billing::repo as billing;
use crate::db::TenantTx;
use crate::error::{AppError, AppResult};
use crate::jobs::kinds::{
    ANALYZE_TICKET, RESUME_ANALYSES, SYNC_TICKET_VECTOR, UPSERT_TICKET_VECTOR,
};
use crate::jobs::{self, BoxFuture, Handler, Job, JobContext, JobError};
use crate::support::repo::{self as support, TicketRow};

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
        Arc::new(UpsertTicketVector { ai: ai.clone() }),
        Arc::new(super::reindex::ReindexVectors { ai: ai.clone() }),
    ]
}

/// Embeds `ticket`'s title and description and stores the vector in Qdrant (when configured), with
/// no transaction held; the embedding's tokens, or why it failed.
async fn store_vector(ai: &Ai, org_id: Uuid, ticket: &TicketRow) -> Result<Option<u32>, String> {
    let Some(index) = &ai.index else {
        return Ok(None);
    };
    let embedded = ai
        .embed(&[format!("{}\n{}", ticket.title, ticket.description)])
        .await
        .map_err(|e| format!("embedding failed: {e}"))?;
    let vector = embedded
        .vectors
        .into_iter()
        .next()
        .ok_or_else(|| "the embedder returned no vector".to_owned())?;
    index
        .upsert(org_id, ticket, vector)
        .await
        .map_err(|e| format!("storing the vector in Qdrant failed: {e:#}"))?;
    Ok(embedded.tokens)
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
        // Qdrant down (or the embedder failing) does not fail the analysis: the vector is stored
        // later by an `upsert_ticket_vector` job queued with the result.
        let mut embedding_tokens = None;
        let mut vector_stored = true;
        if self.ai.index.is_some() {
            match store_vector(&self.ai, job.org_id, &ticket).await {
                Ok(tokens) => embedding_tokens = tokens,
                Err(err) => {
                    tracing::warn!(
                        ticket = %ticket.id,
                        error = err,
                        "could not store the ticket's vector; an upsert_ticket_vector job will"
                    );
                    vector_stored = false;
                }
            }
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
        // The vector could not be stored, or it was computed from text that an edit has changed
        // since (the edit's own upsert may already have run; ours must not be the last word).
        // Decided under the organization's write lock, which the writes above hold.
        let stale = match self.ai.index {
            Some(_) => support::ticket(&tx, ticket.id)
                .await?
                .is_some_and(|now| content_hash(&now) != content_hash(&ticket)),
            None => false,
        };
        if !vector_stored || stale {
            queue_vector_upsert(&tx, ticket.id, Duration::ZERO).await?;
        }
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
                Ok(Queued::Now {
                    held,
                    hold_id,
                    job_id,
                }) => {
                    repo::mark_queued(
                        &tx,
                        analysis.id,
                        &repo::Queued {
                            content_hash: &hash,
                            provider: self.ai.provider(),
                            model: self.ai.model(),
                            credits_held: held,
                            hold_id,
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
            jobs::enqueue(&tx, &jobs::kinds::resume_analyses()).await?;
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
        ctx.finish(job).await
    }
}

impl Handler for SyncTicketVector {
    fn kind(&self) -> &'static str {
        SYNC_TICKET_VECTOR
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.run_job(ctx, job))
    }
}

/// Embeds a ticket's current text and stores its vector (with a current payload) in Qdrant; a Qdrant
/// or embedder failure retries with the queue's backoff. A ticket gone meanwhile has nothing to store
/// (its `sync_ticket_vector` job deletes the point).
pub struct UpsertTicketVector {
    pub ai: Arc<Ai>,
}

impl UpsertTicketVector {
    async fn current(ctx: &JobContext, job: &Job, id: Uuid) -> Result<Option<TicketRow>, JobError> {
        let tx = ctx.tenant_tx(job).await?;
        let ticket = support::ticket(&tx, id).await?;
        tx.commit().await?;
        Ok(ticket)
    }

    async fn run_job(&self, ctx: &JobContext, job: &Job) -> Result<(), JobError> {
        let ticket_id = arg_uuid(job, "ticket_id")?;
        let Some(ticket) = Self::current(ctx, job, ticket_id).await? else {
            return ctx.finish(job).await;
        };
        store_vector(&self.ai, job.org_id, &ticket)
            .await
            .map_err(JobError::Retry)?;
        // Finish under the organization's write lock, which every ticket write takes first. An edit
        // that committed while we embedded merged into this running job, so it is seen here and
        // queued again (after this job is completed, so the new one is not merged into it); an edit
        // that commits after us finds no active job and queues its own.
        let tx = ctx.locked_tx(job).await?;
        tx.query_one("select app.lock_org_for_writes(app.current_org_id())", &[])
            .await?;
        let now = support::ticket(&tx, ticket_id).await?;
        jobs::complete(&tx, job).await?;
        if now.is_some_and(|now| content_hash(&now) != content_hash(&ticket)) {
            queue_vector_upsert(&tx, ticket_id, Duration::ZERO).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl Handler for UpsertTicketVector {
    fn kind(&self) -> &'static str {
        UPSERT_TICKET_VECTOR
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.run_job(ctx, job))
    }
}

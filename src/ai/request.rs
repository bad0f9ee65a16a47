//! The request side of the pipeline, from a ticket to its queued analysis (the job side is
//! [`super::handlers`]).
//!
//! 1. [`request_analysis`], in the caller's transaction (`createTicket` through
//!    [`TicketFollowUp`], `reanalyzeTicket`): holds the model's price in credits, enqueues an
//!    `analyze_ticket` job and records a `pending` analysis — all or nothing with the ticket. Too few
//!    credits: the analysis is `insufficient_credits` and nothing is queued; when credits come in,
//!    billing queues a `resume_analyses` job that retries them in order.
//! 2. `AnalyzeTicket`, in a worker: marks the analysis running (short transaction), calls the model
//!    and the embedder with no transaction open, stores the vector in Qdrant (idempotent: the point id
//!    is the ticket id), then in one transaction of the ticket's organization completes the job
//!    (fenced by attempt), captures the actual cost, records the result and applies the priority. A
//!    stale run cannot complete, so a ticket is charged once whatever happens to workers.
//! 3. A run that fails for good releases the hold and records the error.
//! 4. A vector that could not be stored (Qdrant down) and an edit of a ticket's text (through
//!    [`TicketFollowUp::text_changed`], debounced by [`REEMBED_DEBOUNCE`]) both queue
//!    [`queue_vector_upsert`]: one `upsert_ticket_vector` job per ticket, which embeds the ticket's
//!    current text and retries until Qdrant answers.
//!
//! The analysis id is the idempotency key that ties it together: the hold's ledger key is
//! `hold:analysis:<id>`, the job carries the id, and every write is in the audit trail.

use futures_util::future::BoxFuture;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Ai;
use super::repo::{self, AnalysisRow, AnalysisStatus};
use crate::billing::repo as billing;
use crate::db::TenantTx;
use crate::error::{AppError, AppResult};
use crate::jobs::kinds::{ANALYZE_TICKET, SYNC_TICKET_VECTOR, UPSERT_TICKET_VECTOR};
use crate::jobs::{self, NewJob};
use crate::support::repo::{self as support, TicketRow};
use crate::support::service::TicketFollowUp;

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
pub(super) enum Queued {
    /// Credits held and a job enqueued.
    Now {
        held: i64,
        hold_id: Uuid,
        job_id: Uuid,
    },
    /// A job for this ticket version is already queued or running (for this analysis id).
    Already(Option<Uuid>),
}

/// Holds credits and enqueues the analysis job; `Err(InsufficientCredits)` leaves the transaction
/// usable and changes nothing. Called with the organization's write lock held, so the check for a
/// queued twin and the enqueue cannot race.
pub(super) async fn hold_and_enqueue(
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
        jobs::Enqueued::New(job_id) => Ok(Queued::Now {
            held: price.credits,
            hold_id: hold.id,
            job_id,
        }),
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
        Ok(Queued::Now {
            held,
            hold_id,
            job_id,
        }) => (AnalysisStatus::Pending, held, Some(hold_id), Some(job_id)),
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

/// How long an edit's re-embedding waits, so that a burst of edits is embedded once (their jobs merge
/// on the ticket id while the first one waits).
pub const REEMBED_DEBOUNCE: std::time::Duration = std::time::Duration::from_secs(3);

/// Attempts of an `upsert_ticket_vector` job: with the queue's backoff (capped by
/// `DESKGRAPH_JOB_BACKOFF_MAX_SECS`), enough to outlast a long Qdrant outage.
pub const UPSERT_VECTOR_MAX_ATTEMPTS: i32 = 50;

/// Queues the embedding and storing of the ticket's current text in Qdrant (an `upsert_ticket_vector`
/// job, one per ticket: a twin still waiting or running is kept instead), not before `delay` from now.
pub async fn queue_vector_upsert(
    tx: &TenantTx,
    ticket_id: Uuid,
    delay: std::time::Duration,
) -> AppResult<jobs::Enqueued> {
    let run_at = chrono::Utc::now()
        + chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::zero());
    jobs::enqueue(
        tx,
        &NewJob {
            unique_key: Some(ticket_id.to_string()),
            run_at: Some(run_at),
            max_attempts: UPSERT_VECTOR_MAX_ATTEMPTS,
            ..NewJob::new(UPSERT_TICKET_VECTOR, json!({ "ticket_id": ticket_id }))
        },
    )
    .await
}

/// Filing a ticket requests its analysis; a status change refreshes its vector payload; an edit of its
/// text re-embeds it (debounced).
impl TicketFollowUp for Ai {
    fn filed<'a>(
        &'a self,
        tx: &'a TenantTx,
        ticket: &'a TicketRow,
    ) -> BoxFuture<'a, AppResult<()>> {
        Box::pin(async move {
            request_analysis(tx, self, ticket, "created").await?;
            Ok(())
        })
    }

    fn status_changed<'a>(
        &'a self,
        tx: &'a TenantTx,
        ticket_id: Uuid,
    ) -> BoxFuture<'a, AppResult<()>> {
        Box::pin(queue_vector_sync(tx, self, ticket_id))
    }

    fn text_changed<'a>(
        &'a self,
        tx: &'a TenantTx,
        ticket_id: Uuid,
    ) -> BoxFuture<'a, AppResult<()>> {
        Box::pin(async move {
            if self.index.is_some() {
                queue_vector_upsert(tx, ticket_id, REEMBED_DEBOUNCE).await?;
            }
            Ok(())
        })
    }
}

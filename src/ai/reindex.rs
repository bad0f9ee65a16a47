//! Re-indexing: fills the current Qdrant collection (the one of the embedding model and dimension,
//! see [`super::vectors::collection_name`]) with every ticket's vector — after Qdrant is switched on
//! for an existing database, or after the embedding model changes.
//!
//! `deskgraph reindex` ([`queue`]) enqueues one `reindex_vectors` job per organization, in a
//! transaction of that organization as the server's own work. A run ([`ReindexVectors`]) handles one
//! batch of the organization's tickets in id order (keyset): it reads the batch (short transaction),
//! asks Qdrant which points already hold the ticket's current text (the `content_hash` in their
//! payload), embeds the rest in one embedder call, upserts them, and then — in one transaction —
//! completes itself, records what it did on its row (`args.result`) and queues the next batch with the
//! cursor and running totals. No run holds its lease longer than one batch, a failed batch retries on
//! its own, and running a re-index again embeds nothing that is current (everything is skipped).

use std::sync::Arc;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{Ai, ProviderError};
use crate::config::DbConfig;
use crate::db::{Access, Credentials, TenantContext, TenantTx, TxOptions};
use crate::error::DbContext as _;
use crate::error::{AppError, AppResult};
use crate::jobs::kinds::REINDEX_VECTORS;
use crate::jobs::{self, BoxFuture, Enqueued, Handler, Job, JobContext, JobError, NewJob};
use crate::support::repo::{TicketRow, tickets_by_ids};

/// Tickets per run (one embedder call, one Qdrant upsert).
pub const DEFAULT_BATCH: i64 = 256;

/// Largest batch accepted (OpenAI takes at most 2,048 inputs per embeddings request).
pub const MAX_BATCH: i64 = 2048;

/// Attempts of one batch: with the queue's doubling backoff, a Qdrant outage of several minutes.
const MAX_ATTEMPTS: i32 = 10;

/// The unique key of an organization's re-index: at most one batch queued or running.
const UNIQUE_KEY: &str = "reindex";

/// What a re-index did (one batch, or the running totals of the whole run).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReindexStats {
    /// Tickets read.
    pub seen: u64,
    /// Tickets embedded and upserted (no point, or a point of an older text).
    pub embedded: u64,
    /// Tickets whose point already held their current text.
    pub skipped: u64,
    /// Of the skipped, those whose payload (status, workspace) was brought up to date.
    pub refreshed: u64,
}

impl std::ops::AddAssign for ReindexStats {
    fn add_assign(&mut self, o: Self) {
        self.seen += o.seen;
        self.embedded += o.embedded;
        self.skipped += o.skipped;
        self.refreshed += o.refreshed;
    }
}

/// The `reindex_vectors` job of the batch after `after` (from the first ticket when `None`).
pub fn reindex_job(after: Option<Uuid>, batch: i64, totals: ReindexStats) -> NewJob<'static> {
    NewJob {
        unique_key: Some(UNIQUE_KEY.to_owned()),
        // After interactive work (analyses, vector syncs).
        priority: 4,
        max_attempts: MAX_ATTEMPTS,
        ..NewJob::new(
            REINDEX_VECTORS,
            json!({ "after": after, "batch": batch.clamp(1, MAX_BATCH), "totals": totals }),
        )
    }
}

/// What `deskgraph reindex` queued.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// Organizations whose re-index was queued now.
    pub queued: usize,
    /// Organizations with a re-index already queued or running (it goes on; nothing added).
    pub already: usize,
}

/// Enqueues a re-index of the transaction's organization (or finds the one already under way).
pub async fn enqueue(tx: &TenantTx, batch: i64) -> AppResult<Enqueued> {
    jobs::enqueue(tx, &reindex_job(None, batch, ReindexStats::default())).await
}

/// `deskgraph reindex`: queues a re-index of `org`, or of every organization, each in a transaction
/// of its organization on the runtime connection (as the server's own work, under RLS).
///
/// Listing every organization is the one cross-tenant read, and it is an operator's: it uses the
/// owner connection (`DATABASE_ADMIN_URL`), as `migrate` does, and reads ids only. With `--org` the
/// admin connection is not needed (the organization's own transaction checks that it exists).
pub async fn queue(db: &DbConfig, org: Option<Uuid>, batch: i64) -> anyhow::Result<Queued> {
    let orgs = match org {
        Some(id) => vec![id],
        None => {
            let admin = crate::db::migrate::connect(db.database_admin_url.expose())
                .await
                .context("listing organizations needs DATABASE_ADMIN_URL (or pass --org ID)")?;
            admin
                .query("select id from organizations order by id", &[])
                .await
                .context("could not list the organizations")?
                .iter()
                .map(|r| r.try_get::<_, Uuid>(0))
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    let pool = crate::db::pool_for(db.database_url.expose(), 2)?;
    // The whole cause chain, not only the API-facing message.
    let err = |e: AppError| anyhow::anyhow!("{e:#}");
    let mut queued = Queued::default();
    for org_id in orgs {
        let tx = TenantTx::begin(
            &pool,
            &Credentials::Trusted(TenantContext::system(org_id)),
            TxOptions {
                request_id: Some("cli:reindex"),
                ..TxOptions::new(Access::ReadWrite, db.statement_timeout_ms)
            },
        )
        .await
        .map_err(err)?;
        let exists = tx
            .query_one(
                "select exists (select 1 from organizations where id = (select app.current_org_id()))",
                &[],
            )
            .await
            .map_err(err)?
            .try_get::<_, bool>(0)?;
        anyhow::ensure!(exists, "no organization {org_id}");
        match enqueue(&tx, batch).await.map_err(err)? {
            Enqueued::New(_) => queued.queued += 1,
            Enqueued::Existing(_) => queued.already += 1,
        }
        tx.commit().await.map_err(err)?;
    }
    Ok(queued)
}

/// The text a ticket's vector is computed from (the same as the analysis's).
fn embedding_text(ticket: &TicketRow) -> String {
    format!("{}\n{}", ticket.title, ticket.description)
}

/// The organization's next `limit` tickets after `after`, in id order, and the cursor of the page
/// after them (`None` on the last page). The cursor comes from the ids read, not from the tickets
/// loaded, so a ticket deleted between the two statements does not end the re-index early.
async fn page(
    tx: &TenantTx,
    after: Option<Uuid>,
    limit: i64,
) -> AppResult<(Vec<TicketRow>, Option<Uuid>)> {
    let ids: Vec<Uuid> = tx
        .query(
            "select t.id from tickets t
              where t.org_id = (select app.current_org_id()) and ($1::uuid is null or t.id > $1)
              order by t.id limit $2",
            &[&after, &limit],
        )
        .await
        .db_context("failed to page the tickets to re-index")?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let next = (ids.len() as i64 == limit)
        .then(|| ids.last().copied())
        .flatten();
    let mut tickets = tickets_by_ids(tx, &ids).await?;
    tickets.sort_by_key(|t| t.id);
    Ok((tickets, next))
}

/// Re-indexes `tickets` of `org_id`: skips those whose point holds their current text (refreshing a
/// stale status or workspace in the payload), embeds the others in one call and upserts them.
pub async fn reindex_batch(
    ai: &Ai,
    org_id: Uuid,
    tickets: &[TicketRow],
) -> Result<ReindexStats, JobError> {
    let index = ai.index.as_ref().ok_or_else(|| {
        JobError::Fail("Qdrant is not configured on this worker (QDRANT_URL)".to_owned())
    })?;
    let qdrant = |e: anyhow::Error| JobError::Retry(format!("Qdrant: {e:#}"));
    let ids: Vec<Uuid> = tickets.iter().map(|t| t.id).collect();
    let stored = index.stored(&ids).await.map_err(qdrant)?;
    let mut stats = ReindexStats {
        seen: tickets.len() as u64,
        ..ReindexStats::default()
    };
    let mut stale: Vec<&TicketRow> = Vec::new();
    for ticket in tickets {
        match stored.get(&ticket.id) {
            Some(point) if point.is_current(org_id, ticket) => {
                stats.skipped += 1;
                if !point.payload_matches(ticket) {
                    index.update_payload(org_id, ticket).await.map_err(qdrant)?;
                    stats.refreshed += 1;
                }
            }
            _ => stale.push(ticket),
        }
    }
    if !stale.is_empty() {
        let texts: Vec<String> = stale.iter().map(|t| embedding_text(t)).collect();
        let embedded = ai.embed(&texts).await.map_err(|e| match e {
            ProviderError::Transient(m) => JobError::Retry(m),
            ProviderError::Permanent(m) => JobError::Fail(m),
        })?;
        if embedded.vectors.len() != stale.len() {
            return Err(JobError::Retry(format!(
                "the embedder returned {} vectors for {} texts",
                embedded.vectors.len(),
                stale.len()
            )));
        }
        let points: Vec<(&TicketRow, Vec<f32>)> =
            stale.iter().copied().zip(embedded.vectors).collect();
        index.upsert_many(org_id, points).await.map_err(qdrant)?;
        stats.embedded = stale.len() as u64;
    }
    Ok(stats)
}

/// Runs one batch of an organization's re-index and queues the next.
pub struct ReindexVectors {
    pub ai: Arc<Ai>,
}

impl ReindexVectors {
    async fn run_job(&self, ctx: &JobContext, job: &Job) -> Result<(), JobError> {
        let after: Option<Uuid> =
            match job.args.get("after") {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => Some(v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                    JobError::Fail("job argument after is not a uuid".to_owned())
                })?),
            };
        let batch = job
            .args
            .get("batch")
            .and_then(|v| v.as_i64())
            .unwrap_or(DEFAULT_BATCH)
            .clamp(1, MAX_BATCH);
        let mut totals: ReindexStats = job
            .args
            .get("totals")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();

        // 1. The batch, read in a short transaction.
        let tx = ctx.tenant_tx(job).await?;
        let (tickets, next) = page(&tx, after, batch).await?;
        tx.commit().await?;
        drop(tx);

        // 2. Qdrant and the embedder, with no transaction (and no pooled connection) held.
        let done = reindex_batch(&self.ai, job.org_id, &tickets).await?;
        totals += done;

        // 3. Complete (fenced by the attempt), record what was done, queue the next batch. Only
        // `jobs` is written: no organization write lock is needed.
        let tx = ctx.tenant_tx(job).await?;
        if !jobs::complete(&tx, job).await? {
            tx.rollback().await?;
            return Err(JobError::Fenced);
        }
        tx.execute(
            "update jobs set args = args || jsonb_build_object('result', $2::jsonb) where id = $1",
            &[
                &job.id,
                &json!({ "batch": done, "totals": totals, "next": next }),
            ],
        )
        .await
        .db_context("failed to record the re-index batch")?;
        if let Some(next) = next {
            jobs::enqueue(&tx, &reindex_job(Some(next), batch, totals)).await?;
        }
        tx.commit().await?;
        tracing::info!(
            org = %job.org_id,
            seen = totals.seen,
            embedded = totals.embedded,
            skipped = totals.skipped,
            refreshed = totals.refreshed,
            batch_embedded = done.embedded,
            finished = next.is_none(),
            "re-index progress"
        );
        Ok(())
    }
}

impl Handler for ReindexVectors {
    fn kind(&self) -> &'static str {
        REINDEX_VECTORS
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(self.run_job(ctx, job))
    }
}

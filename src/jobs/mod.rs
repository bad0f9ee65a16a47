//! A transactional job queue in PostgreSQL, modelled on River and Oban.
//!
//! Written here rather than taken from crates.io: the Rust Postgres queues there are built on another
//! driver (sqlx) and cannot enqueue inside our `tokio-postgres` [`TenantTx`], which is the point — a
//! ticket and its analysis job commit together or not at all.
//!
//! - [`enqueue`] inserts a job in the caller's tenant transaction (RLS applies).
//! - Workers ([`runtime`]) claim across organizations with `auth_private.claim_jobs` (`FOR UPDATE SKIP
//!   LOCKED`), woken by `LISTEN deskgraph_jobs` with a slow poll as fallback, and lease what they claim.
//! - A job's work runs in a transaction of the job's organization, which finishes the job with
//!   [`complete`] — an UPDATE fenced by the claim's `attempt`, so a worker that lost its lease cannot
//!   complete a job another worker has taken over, and the work's writes roll back with it.
//! - Failures retry with exponential backoff and jitter ([`backoff`]) until `max_attempts`, then the
//!   job is `discarded` with its last error.
//!
//! This file is the queue's API (enqueue, fence, complete, fail); [`handler`] is the contract a job
//! kind implements, [`runtime`] the loops that drive handlers, [`config`] their settings and
//! [`kinds`] the job kinds that one module enqueues for another to handle.

pub mod config;
pub mod handler;
pub mod kinds;
pub mod runtime;

pub use config::WorkerConfig;
pub use handler::{BoxFuture, Handler, JobContext, JobError};
pub use runtime::{Stats, Workers};

use std::time::Duration;

use rand::Rng;
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::db::TenantTx;
use crate::error::AppResult;
use crate::error::DbContext as _;

/// A claimed job, as its worker sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub org_id: Uuid,
    pub id: Uuid,
    pub kind: String,
    pub args: Value,
    /// This run's attempt number (1 for the first): the fencing token of [`complete`] and [`fail`].
    pub attempt: i32,
    pub max_attempts: i32,
}

impl Job {
    fn from_row(row: &Row) -> AppResult<Self> {
        Ok(Self {
            org_id: row.try_get("org_id")?,
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            args: row.try_get("args")?,
            attempt: row.try_get("attempt")?,
            max_attempts: row.try_get("max_attempts")?,
        })
    }
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub kind: &'a str,
    pub args: Value,
    /// 1 runs first, 4 last.
    pub priority: i16,
    /// Not before this time (now when `None`).
    pub run_at: Option<chrono::DateTime<chrono::Utc>>,
    pub max_attempts: i32,
    /// At most one available or running job per organization, kind and key: enqueueing a twin returns
    /// the existing job instead.
    pub unique_key: Option<String>,
}

impl<'a> NewJob<'a> {
    pub fn new(kind: &'a str, args: Value) -> Self {
        Self {
            kind,
            args,
            priority: 2,
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            unique_key: None,
        }
    }
}

pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;

/// Whether [`enqueue`] wrote a job or found its unique twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    New(Uuid),
    Existing(Uuid),
}

impl Enqueued {
    pub fn id(self) -> Uuid {
        match self {
            Enqueued::New(id) | Enqueued::Existing(id) => id,
        }
    }
}

/// Enqueues a job for the transaction's organization; it becomes visible to workers when the
/// transaction commits (and listening workers are woken then). With a unique key, an available or
/// running twin is returned instead ([`Enqueued::Existing`]).
pub async fn enqueue(tx: &TenantTx, job: &NewJob<'_>) -> AppResult<Enqueued> {
    // The insert and the look-up of its twin are two statements: a twin that finishes between them
    // (READ COMMITTED sees its commit) frees the key, and the insert is simply tried again.
    for _ in 0..3 {
        if let Some(id) = insert(tx, job).await? {
            return Ok(Enqueued::New(id));
        }
        let Some(key) = &job.unique_key else {
            break;
        };
        if let Some((id, _)) = active(tx, job.kind, key).await? {
            return Ok(Enqueued::Existing(id));
        }
    }
    Err(anyhow::anyhow!("job {} conflicted but its twin is gone", job.kind).into())
}

/// Inserts `job` unless an available or running job has its unique key; its id when inserted.
async fn insert(tx: &TenantTx, job: &NewJob<'_>) -> AppResult<Option<Uuid>> {
    tx.query_opt(
        "insert into jobs (org_id, kind, args, priority, run_at, max_attempts, unique_key)
         values ((select app.current_org_id()), $1, $2, $3, coalesce($4, now()), $5, $6)
         on conflict (org_id, kind, unique_key)
            where unique_key is not null and state in ('available', 'running')
         do nothing
         returning id",
        &[
            &job.kind,
            &job.args,
            &job.priority,
            &job.run_at,
            &job.max_attempts,
            &job.unique_key,
        ],
    )
    .await
    .db_context("failed to enqueue job")?
    .map(|row| row.try_get(0))
    .transpose()
    .map_err(Into::into)
}

/// The id and arguments of the available or running job of this kind and unique key, if any.
pub async fn active(
    tx: &TenantTx,
    kind: &str,
    unique_key: &str,
) -> AppResult<Option<(Uuid, Value)>> {
    tx.query_opt(
        "select id, args from jobs
          where org_id = (select app.current_org_id()) and kind = $1 and unique_key = $2
            and state in ('available', 'running')",
        &[&kind, &unique_key],
    )
    .await
    .db_context("failed to load the active job")?
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .transpose()
}

/// Locks this run of `job` for finishing, in the job's tenant transaction: true while the job is
/// still this worker's (running, same attempt). Takes the organization's write lock first, the order
/// every writer of the organization follows.
pub async fn lock_run(tx: &TenantTx, job: &Job) -> AppResult<bool> {
    tx.query_one("select app.lock_org_for_writes($1)", &[&job.org_id])
        .await
        .db_context("failed to lock the organization for writes")?;
    Ok(tx
        .query_opt(
            "select 1 from jobs where id = $1 and attempt = $2 and state = 'running' for update",
            &[&job.id, &job.attempt],
        )
        .await
        .db_context("failed to lock the job run")?
        .is_some())
}

/// Marks this run of `job` completed, in the job's tenant transaction (role `system`). False when the
/// run was fenced off (its lease expired and the job was claimed again, or it was released): the
/// caller must roll back, so that the work's writes happen once, by the run that holds the job.
pub async fn complete(tx: &TenantTx, job: &Job) -> AppResult<bool> {
    let n = tx
        .execute(
            "update jobs set state = 'completed', finished_at = now(), locked_by = null,
                    lease_expires_at = null
              where id = $1 and attempt = $2 and state = 'running'",
            &[&job.id, &job.attempt],
        )
        .await
        .db_context("failed to complete job")?;
    Ok(n == 1)
}

/// What [`fail`] did with a failed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Runs again at this time.
    Retrying(chrono::DateTime<chrono::Utc>),
    /// No attempts left (or the error was final): discarded with the error.
    Discarded,
    /// The run had been fenced off; nothing changed.
    Fenced,
}

/// Records a failed run of `job`, in the job's tenant transaction: scheduled again after `delay`, or
/// discarded when `retry` is false or the attempts are used up.
pub async fn fail(
    tx: &TenantTx,
    job: &Job,
    error: &str,
    retry: bool,
    delay: Duration,
) -> AppResult<Failed> {
    let discard = !retry || job.attempt >= job.max_attempts;
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    let row = tx
        .query_opt(
            "update jobs set
                    state = case when $3 then 'discarded' else 'available' end,
                    run_at = case when $3 then run_at
                                  else now() + make_interval(secs => $4::bigint / 1000.0) end,
                    finished_at = case when $3 then now() end,
                    locked_by = null,
                    lease_expires_at = null,
                    last_error = $5,
                    errors = errors || jsonb_build_array(jsonb_build_object(
                        'attempt', attempt, 'at', now(), 'error', $5::text))
              where id = $1 and attempt = $2 and state = 'running'
              returning run_at",
            &[&job.id, &job.attempt, &discard, &delay_ms, &error],
        )
        .await
        .db_context("failed to record job failure")?;
    Ok(match row {
        None => Failed::Fenced,
        Some(_) if discard => Failed::Discarded,
        Some(row) => Failed::Retrying(row.try_get(0)?),
    })
}

/// How long to wait before attempt `attempt + 1` after attempt `attempt` failed: exponential
/// (`base · 2^(attempt-1)`, capped at `max`) with equal jitter (a random point in its upper half),
/// so that jobs failing together do not retry together.
pub fn backoff(attempt: i32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exp = u32::try_from(attempt.clamp(1, 31) - 1).unwrap_or(0);
    let full = base.saturating_mul(2u32.saturating_pow(exp)).min(max);
    let half = full / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rng.random_range(0..=jitter_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_per_attempt_within_its_jitter_band_and_is_capped() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for attempt in 1..=10 {
            let full = Duration::from_secs((1u64 << (attempt - 1)).min(60));
            for _ in 0..200 {
                let d = backoff(attempt, base, max, &mut rng);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d:?} not in [{:?}, {full:?}]",
                    full / 2
                );
            }
        }
        // Jitter spreads retries: 200 draws for attempt 5 (8..16 s) are not all the same.
        let draws: std::collections::HashSet<_> = (0..200)
            .map(|_| backoff(5, base, max, &mut rng).as_millis())
            .collect();
        assert!(draws.len() > 100, "{} distinct delays", draws.len());
        // Absurd attempt numbers neither overflow nor exceed the cap.
        assert!(backoff(i32::MAX, base, max, &mut rng) <= max);
        assert!(backoff(0, base, max, &mut rng) <= base);
    }
}

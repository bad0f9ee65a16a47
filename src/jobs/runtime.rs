//! The worker runtime: claims jobs, runs them with their handlers, keeps their leases alive, retries
//! failures, and stops gracefully.
//!
//! One dispatcher per process claims as many jobs as it has free slots, whenever a `deskgraph_jobs`
//! notification arrives, a job finishes, or the poll interval passes (notifications are a hint; the
//! poll is what guarantees progress). A heartbeat task extends the leases of running jobs and stops the
//! ones it learns were lost. On shutdown no new job is claimed; running jobs get the grace period to
//! finish, and the rest go back to the queue.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::db::Pool;
use futures_util::FutureExt as _;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;
use uuid::Uuid;

use super::config::WorkerConfig;
use super::handler::{Handler, JobContext, JobError};
use super::{Failed, Job, backoff};
use crate::db::listen::{self, Channel, Heard};
use crate::db::{Access, TenantTx};
use crate::error::AppResult;

/// Counters of one worker process (read by tests and benchmarks).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub completed: u64,
    pub retried: u64,
    pub discarded: u64,
    pub fenced: u64,
}

struct Running {
    attempt: i32,
    abort: tokio::task::AbortHandle,
}

struct Shared {
    id: String,
    cfg: WorkerConfig,
    ctx: JobContext,
    handlers: HashMap<&'static str, Arc<dyn Handler>>,
    kinds: Vec<String>,
    running: Mutex<HashMap<Uuid, Running>>,
    stats: Mutex<Stats>,
    wake: Notify,
    slots: Arc<Semaphore>,
}

/// A running set of workers in this process.
pub struct Workers {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `cfg.workers` job slots for `handlers`, listening for wake-ups on `listen_url` (a
    /// connection of its own, since LISTEN outlives transactions).
    pub fn start(
        pool: Pool,
        listen_url: &str,
        statement_timeout_ms: u64,
        cfg: WorkerConfig,
        handlers: Vec<Arc<dyn Handler>>,
    ) -> anyhow::Result<Self> {
        let listen = crate::db::tls::Target::from_url(listen_url, "DATABASE_URL")?;
        let handlers: HashMap<_, _> = handlers.into_iter().map(|h| (h.kind(), h)).collect();
        let mut kinds: Vec<String> = handlers.keys().map(|k| (*k).to_owned()).collect();
        kinds.sort();
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned());
        let shared = Arc::new(Shared {
            id: format!("{host}:{}:{}", std::process::id(), Uuid::new_v4().simple()),
            slots: Arc::new(Semaphore::new(cfg.workers.max(1))),
            cfg,
            ctx: JobContext {
                pool,
                statement_timeout_ms,
            },
            handlers,
            kinds,
            running: Mutex::new(HashMap::new()),
            stats: Mutex::new(Stats::default()),
            wake: Notify::new(),
        });
        let (stop, stopped) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(listen_loop(shared.clone(), listen, stopped.clone())),
            tokio::spawn(heartbeat_loop(shared.clone())),
            tokio::spawn(prune_loop(shared.clone(), stopped.clone())),
            tokio::spawn(dispatch_loop(shared.clone(), stopped)),
        ];
        tracing::info!(worker = %shared.id, slots = shared.cfg.workers, kinds = ?shared.kinds, "job workers started");
        Ok(Self {
            shared,
            stop,
            tasks,
        })
    }

    /// This process's worker id (recorded as `locked_by` on the jobs it runs).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Stops claiming, gives running jobs `grace` to finish, then stops them and puts them back in the
    /// queue (runnable at once, the attempt counted).
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let left = self.running_jobs();
            if left.is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let interrupted = self.abort_running();
        if !interrupted.is_empty() {
            let (ids, attempts): (Vec<Uuid>, Vec<i32>) = interrupted.into_iter().unzip();
            match release(&self.shared, &ids, &attempts).await {
                Ok(n) => tracing::info!(released = n, "unfinished jobs put back in the queue"),
                Err(err) => tracing::warn!(
                    error = %err,
                    "could not put unfinished jobs back; they run again when their lease expires"
                ),
            }
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
        tracing::info!(worker = %self.shared.id, "job workers stopped");
    }

    /// Stops everything at once, as a crash would: no release, no more heartbeats. Their jobs are
    /// rescued by other workers when the leases expire. For tests of exactly that.
    pub fn kill(mut self) {
        let _ = self.stop.send(true);
        self.abort_running();
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }

    fn running_jobs(&self) -> Vec<Uuid> {
        self.shared
            .running
            .lock()
            .map(|r| r.keys().copied().collect())
            .unwrap_or_default()
    }

    fn abort_running(&self) -> Vec<(Uuid, i32)> {
        let Ok(mut running) = self.shared.running.lock() else {
            return Vec::new();
        };
        running
            .drain()
            .map(|(id, run)| {
                run.abort.abort();
                (id, run.attempt)
            })
            .collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A transaction with no organization, as the server's own work: what the queue functions require.
async fn system_tx(shared: &Shared) -> AppResult<TenantTx> {
    TenantTx::begin_system_unscoped(
        &shared.ctx.pool,
        Access::ReadWrite,
        shared.ctx.statement_timeout_ms,
    )
    .await
}

fn secs_i32(secs: u64) -> i32 {
    i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
}

async fn claim(shared: &Shared, limit: usize) -> AppResult<Vec<Job>> {
    let tx = system_tx(shared).await?;
    let rows = tx
        .query(
            "select * from auth_private.claim_jobs($1, $2, $3, $4)",
            &[
                &shared.id,
                &shared.kinds,
                &i32::try_from(limit).unwrap_or(i32::MAX),
                &secs_i32(shared.cfg.lease_secs),
            ],
        )
        .await?;
    tx.commit().await?;
    rows.iter().map(Job::from_row).collect()
}

async fn release(shared: &Shared, ids: &[Uuid], attempts: &[i32]) -> AppResult<i32> {
    let tx = system_tx(shared).await?;
    let row = tx
        .query_one(
            "select auth_private.release_jobs($1, $2, $3)",
            &[&shared.id, &ids, &attempts],
        )
        .await?;
    tx.commit().await?;
    Ok(row.try_get(0)?)
}

async fn dispatch_loop(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let poll = Duration::from_millis(shared.cfg.poll_ms.max(10));
    loop {
        if *stopped.borrow() {
            return;
        }
        let free = shared.slots.available_permits();
        let mut full = false;
        if free > 0 {
            match claim(&shared, free).await {
                Ok(jobs) => {
                    full = jobs.len() == free;
                    for job in jobs {
                        start_job(&shared, job);
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "claiming jobs failed; retrying after the poll interval");
                }
            }
        }
        if full {
            // All slots taken: more may be waiting; claim again as soon as a slot frees up (or after
            // the poll interval, whatever happens to wake-ups).
            tokio::select! {
                _ = stopped.changed() => {},
                _ = shared.wake.notified() => {},
                () = tokio::time::sleep(poll) => {},
            }
            continue;
        }
        tokio::select! {
            _ = stopped.changed() => {},
            _ = shared.wake.notified() => {},
            () = tokio::time::sleep(poll) => {},
        }
    }
}

/// Unregisters a run however its task ends (finished, panicked, or aborted by a lost lease or a
/// shutdown): frees its slot and wakes the dispatcher, so no slot leaks and no heartbeat keeps a lease
/// alive for a run that is gone.
struct RunGuard {
    shared: Arc<Shared>,
    id: Uuid,
    attempt: i32,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if let Ok(mut running) = self.shared.running.lock()
            && running
                .get(&self.id)
                .is_some_and(|r| r.attempt == self.attempt)
        {
            running.remove(&self.id);
        }
        self.shared.wake.notify_one();
    }
}

fn start_job(shared: &Arc<Shared>, job: Job) {
    let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
        // Cannot happen (we claimed no more than the free slots); the lease brings the job back.
        tracing::error!(job = %job.id, "no free slot for a claimed job");
        return;
    };
    let Some(handler) = shared.handlers.get(job.kind.as_str()).cloned() else {
        tracing::error!(job = %job.id, kind = %job.kind, "claimed a job of an unknown kind");
        return;
    };
    let (id, attempt) = (job.id, job.attempt);
    // Registered before the task runs, so that the task's own removal cannot come first.
    let Ok(mut running) = shared.running.lock() else {
        return;
    };
    let guard = RunGuard {
        shared: shared.clone(),
        id,
        attempt,
        _permit: permit,
    };
    let task_shared = shared.clone();
    let task = tokio::spawn(async move {
        let _guard = guard;
        run_job(&task_shared, handler.as_ref(), &job).await;
    });
    // This worker may claim its own job again after a stall: the older run is stopped (it is fenced
    // off anyway).
    if let Some(old) = running.insert(
        id,
        Running {
            attempt,
            abort: task.abort_handle(),
        },
    ) {
        old.abort.abort();
    }
}

async fn run_job(shared: &Shared, handler: &dyn Handler, job: &Job) {
    let started = std::time::Instant::now();
    let span = tracing::info_span!("job", id = %job.id, kind = %job.kind, org = %job.org_id, attempt = job.attempt);
    let result = if job.attempt > job.max_attempts {
        // Its last attempt died with its worker (lease expired) or was interrupted: fail it here,
        // through the handler, so that what it holds is settled.
        Err(JobError::Fail(format!(
            "no attempts left after {} (the last one stopped without finishing)",
            job.max_attempts
        )))
    } else {
        // A panicking handler fails its attempt like an error instead of leaving the job leased.
        std::panic::AssertUnwindSafe(handler.run(&shared.ctx, job))
            .catch_unwind()
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| Err(JobError::Retry("the job handler panicked".to_owned())))
    };
    let elapsed_ms = started.elapsed().as_millis();
    let outcome = match result {
        Ok(()) => {
            tracing::debug!(parent: &span, elapsed_ms, "job completed");
            bump(shared, |s| s.completed += 1);
            return;
        }
        Err(JobError::Fenced) => {
            tracing::warn!(parent: &span, "job run lost its lease; its work was rolled back");
            bump(shared, |s| s.fenced += 1);
            return;
        }
        Err(JobError::Retry(message)) => record_failure(shared, handler, job, &message, true).await,
        Err(JobError::Fail(message)) => record_failure(shared, handler, job, &message, false).await,
    };
    match outcome {
        Ok(Failed::Retrying(at)) => {
            tracing::warn!(parent: &span, retry_at = %at, "job failed; will retry");
            bump(shared, |s| s.retried += 1);
        }
        Ok(Failed::Discarded) => {
            tracing::error!(parent: &span, "job failed for good and was discarded");
            bump(shared, |s| s.discarded += 1);
        }
        Ok(Failed::Fenced) => bump(shared, |s| s.fenced += 1),
        Err(err) => tracing::error!(
            parent: &span,
            error = %err,
            "could not record a job failure; it runs again when its lease expires"
        ),
    }
}

fn bump(shared: &Shared, f: impl FnOnce(&mut Stats)) {
    if let Ok(mut stats) = shared.stats.lock() {
        f(&mut stats);
    }
}

/// Records a failed run and lets the handler update its own records, in one tenant transaction.
async fn record_failure(
    shared: &Shared,
    handler: &dyn Handler,
    job: &Job,
    message: &str,
    retry: bool,
) -> AppResult<Failed> {
    let delay = backoff(
        job.attempt,
        Duration::from_millis(shared.cfg.backoff_base_ms),
        Duration::from_secs(shared.cfg.backoff_max_secs),
        &mut rand::rng(),
    );
    let tx = shared.ctx.tenant_tx(job).await?;
    if !super::lock_run(&tx, job).await? {
        tx.rollback().await?;
        return Ok(Failed::Fenced);
    }
    let failed = super::fail(&tx, job, message, retry, delay).await?;
    if failed != Failed::Fenced {
        handler
            .failed(&tx, job, message, failed == Failed::Discarded)
            .await?;
    }
    tx.commit().await?;
    Ok(failed)
}

/// Renews the leases of running jobs until the workers are stopped for good (it keeps going through
/// the shutdown grace period, so that finishing runs keep their jobs).
async fn heartbeat_loop(shared: Arc<Shared>) {
    let every = Duration::from_millis((shared.cfg.lease_secs.max(1) * 1000) / 3);
    let mut suspects: HashSet<(Uuid, i32)> = HashSet::new();
    loop {
        tokio::time::sleep(every).await;
        let held: Vec<(Uuid, i32)> = match shared.running.lock() {
            Ok(r) => r.iter().map(|(id, run)| (*id, run.attempt)).collect(),
            Err(_) => return,
        };
        if held.is_empty() {
            suspects.clear();
            continue;
        }
        let ids: Vec<Uuid> = held.iter().map(|(id, _)| *id).collect();
        let extended = async {
            let tx = system_tx(&shared).await?;
            let rows = tx
                .query(
                    "select id, attempt from auth_private.extend_job_leases($1, $2, $3)",
                    &[&shared.id, &ids, &secs_i32(shared.cfg.lease_secs)],
                )
                .await?;
            tx.commit().await?;
            rows.iter()
                .map(|r| Ok((r.try_get::<_, Uuid>(0)?, r.try_get::<_, i32>(1)?)))
                .collect::<AppResult<Vec<_>>>()
        };
        match extended.await {
            Ok(kept) => {
                let lost: HashSet<(Uuid, i32)> =
                    held.into_iter().filter(|h| !kept.contains(h)).collect();
                // A run that has just committed its job is not extended either: it is stopped only
                // when it is still registered a heartbeat later (a lost run writes nothing anyway).
                let confirmed: Vec<(Uuid, i32)> = lost.intersection(&suspects).copied().collect();
                suspects = lost;
                if let Ok(mut running) = shared.running.lock() {
                    for (id, attempt) in confirmed {
                        if running.get(&id).is_some_and(|r| r.attempt == attempt) {
                            tracing::warn!(job = %id, attempt, "lease lost; stopping the run");
                            if let Some(run) = running.remove(&id) {
                                run.abort.abort();
                            }
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "extending job leases failed"),
        }
    }
}

async fn prune_loop(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let keep = shared.cfg.retention_hours.saturating_mul(3600);
    loop {
        let pruned = async {
            let tx = system_tx(&shared).await?;
            let row = tx
                .query_one(
                    "select auth_private.prune_jobs($1, 10000)",
                    &[&i32::try_from(keep).unwrap_or(i32::MAX)],
                )
                .await?;
            tx.commit().await?;
            AppResult::Ok(row.try_get::<_, i32>(0)?)
        };
        match pruned.await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "pruned finished jobs"),
            Err(err) => tracing::warn!(error = %err, "pruning finished jobs failed"),
        }
        tokio::select! {
            _ = stopped.changed() => if *stopped.borrow() { return },
            () = tokio::time::sleep(Duration::from_secs(600)) => {},
        }
    }
}

/// Keeps a `LISTEN deskgraph_jobs` connection open (`db::listen`) and wakes the dispatcher on every
/// notification, and after every (re)connect for jobs enqueued while nobody listened.
async fn listen_loop(
    shared: Arc<Shared>,
    target: crate::db::tls::Target,
    mut stopped: watch::Receiver<bool>,
) {
    let channel = Channel {
        name: "deskgraph_jobs",
        about: "job",
        first_retry: Duration::from_secs(2),
        last_retry: Duration::from_secs(2),
    };
    let stopped = async move {
        let _ = stopped.wait_for(|stopped| *stopped).await;
    };
    listen::run(target, channel, stopped, |heard| match heard {
        Heard::Listening { .. } | Heard::Notification(_) => shared.wake.notify_one(),
        Heard::Lost => {}
    })
    .await;
}

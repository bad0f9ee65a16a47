//! The job queue on a real PostgreSQL: exactly-once completion across workers, backoff and discard,
//! fencing of stale runs, rescue after a lease, graceful shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deskgraph::authz::Role;
use deskgraph::db::{Access, Credentials, TenantContext, TenantTx, TxOptions};
use deskgraph::jobs::{self, Job, NewJob};
use deskgraph::jobs::{BoxFuture, Handler, JobContext, JobError, WorkerConfig, Workers};
use serde_json::json;
use uuid::Uuid;

use crate::common::{TestApp, org_fixture, trusted_tx};

pub fn fast_workers(slots: usize, max_attempts: i32) -> WorkerConfig {
    WorkerConfig {
        workers: slots,
        lease_secs: 2,
        poll_ms: 100,
        backoff_base_ms: 200,
        backoff_max_secs: 5,
        max_attempts,
        retention_hours: 72,
    }
}

/// Polls `check` every 50 ms until it holds, failing after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Records every run; completes, fails, or sleeps as told.
#[derive(Clone, Default)]
struct TestHandler {
    kind: &'static str,
    runs: Arc<Mutex<HashMap<Uuid, Vec<i32>>>>,
    failed_calls: Arc<Mutex<Vec<(Uuid, bool)>>>,
    fail: bool,
    sleep: Option<Duration>,
    /// Panics on the first attempt.
    panic_first: bool,
}

impl Handler for TestHandler {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            self.runs
                .lock()
                .unwrap()
                .entry(job.id)
                .or_default()
                .push(job.attempt);
            if self.panic_first && job.attempt == 1 {
                panic!("handler bug on attempt 1");
            }
            if let Some(sleep) = self.sleep {
                tokio::time::sleep(sleep).await;
            }
            if self.fail {
                return Err(JobError::Retry(format!("boom {}", job.attempt)));
            }
            ctx.finish(job).await
        })
    }

    fn failed<'a>(
        &'a self,
        _tx: &'a TenantTx,
        job: &'a Job,
        _error: &'a str,
        discarded: bool,
    ) -> BoxFuture<'a, deskgraph::error::AppResult<()>> {
        self.failed_calls.lock().unwrap().push((job.id, discarded));
        Box::pin(async { Ok(()) })
    }
}

async fn enqueue_many(app: &TestApp, org: Uuid, kind: &str, n: usize) -> Vec<Uuid> {
    enqueue_with(app, org, kind, n, jobs::DEFAULT_MAX_ATTEMPTS).await
}

async fn enqueue_with(
    app: &TestApp,
    org: Uuid,
    kind: &str,
    n: usize,
    max_attempts: i32,
) -> Vec<Uuid> {
    let pool = app.state().engine.pool.clone();
    let tx = trusted_tx(&pool, Some(org), Some(Role::Agent), Access::ReadWrite).await;
    let mut ids = Vec::new();
    for i in 0..n {
        let job = NewJob {
            max_attempts,
            ..NewJob::new(kind, json!({ "i": i }))
        };
        let job = jobs::enqueue(&tx, &job).await.unwrap();
        ids.push(job.id());
    }
    tx.commit().await.unwrap();
    ids
}

fn start(app: &TestApp, cfg: WorkerConfig, handler: &TestHandler) -> Workers {
    let state = app.state();
    Workers::start(
        state.engine.pool.clone(),
        app.db.db_config().database_url.expose(),
        10_000,
        cfg,
        vec![Arc::new(handler.clone())],
    )
    .unwrap()
}

async fn job_states(app: &TestApp, kind: &str) -> HashMap<String, i64> {
    app.db
        .admin()
        .await
        .query(
            "select state, count(*) from jobs where kind = $1 group by state",
            &[&kind],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn two_workers_complete_200_jobs_each_exactly_once() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "q-once").await;
    let handler = TestHandler {
        kind: "noop_test",
        ..TestHandler::default()
    };
    let ids = enqueue_many(&app, org.id, "noop_test", 200).await;
    let a = start(&app, fast_workers(4, 3), &handler);
    let b = start(&app, fast_workers(4, 3), &handler);
    wait_until("200 completed jobs", Duration::from_secs(60), || async {
        job_states(&app, "noop_test").await.get("completed") == Some(&200)
    })
    .await;
    let runs = handler.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 200);
    for id in &ids {
        assert_eq!(
            runs.get(id),
            Some(&vec![1]),
            "job {id} ran {:?}",
            runs.get(id)
        );
    }
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.completed + sb.completed, 200, "{sa:?} {sb:?}");
    assert_eq!(sa.fenced + sb.fenced + sa.retried + sb.retried, 0);
    println!(
        "worker a completed {}, worker b {}",
        sa.completed, sb.completed
    );
    a.shutdown(Duration::from_secs(1)).await;
    b.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn failures_back_off_exponentially_then_the_job_is_discarded_with_its_errors() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "q-backoff").await;
    let handler = TestHandler {
        kind: "fail_test",
        fail: true,
        ..TestHandler::default()
    };
    let ids = enqueue_with(&app, org.id, "fail_test", 1, 3).await;
    let workers = start(&app, fast_workers(2, 3), &handler);
    wait_until(
        "the job to be discarded",
        Duration::from_secs(20),
        || async { job_states(&app, "fail_test").await.get("discarded") == Some(&1) },
    )
    .await;
    workers.shutdown(Duration::from_secs(1)).await;

    let row = app
        .db
        .admin()
        .await
        .query_one(
            "select attempt, last_error, errors, finished_at is not null from jobs where id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 3);
    assert_eq!(row.get::<_, String>(1), "boom 3");
    assert!(row.get::<_, bool>(3));
    let errors: serde_json::Value = row.get(2);
    let errors = errors.as_array().unwrap();
    assert_eq!(errors.len(), 3, "{errors:?}");
    let at: Vec<chrono::DateTime<chrono::Utc>> = errors
        .iter()
        .map(|e| e["at"].as_str().unwrap().parse().unwrap())
        .collect();
    // Base 200 ms with equal jitter: the wait after attempt n is in [100·2^(n-1), 200·2^(n-1)] ms.
    let gap1 = (at[1] - at[0]).num_milliseconds();
    let gap2 = (at[2] - at[1]).num_milliseconds();
    assert!((100..1_500).contains(&gap1), "first retry after {gap1} ms");
    assert!((200..2_500).contains(&gap2), "second retry after {gap2} ms");
    assert_eq!(
        handler.runs.lock().unwrap().get(&ids[0]),
        Some(&vec![1, 2, 3])
    );
    // The handler heard of every failure, the last one as final.
    assert_eq!(
        *handler.failed_calls.lock().unwrap(),
        vec![(ids[0], false), (ids[0], false), (ids[0], true)]
    );
}

async fn system_tx(app: &TestApp, org: Option<Uuid>) -> TenantTx {
    TenantTx::begin(
        &app.state().engine.pool,
        &Credentials::Trusted(TenantContext {
            org_id: org,
            system: true,
            ..TenantContext::default()
        }),
        TxOptions::new(Access::ReadWrite, 10_000),
    )
    .await
    .unwrap()
}

async fn claim(app: &TestApp, worker: &str, kind: &str) -> Vec<Job> {
    let tx = system_tx(app, None).await;
    let rows = tx
        .query(
            "select org_id, id, kind, args, attempt, max_attempts
               from auth_private.claim_jobs($1, $2, 10, 1)",
            &[&worker, &vec![kind.to_owned()]],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    rows.iter()
        .map(|r| Job {
            org_id: r.get(0),
            id: r.get(1),
            kind: r.get(2),
            args: r.get(3),
            attempt: r.get(4),
            max_attempts: r.get(5),
        })
        .collect()
}

#[tokio::test]
async fn a_run_whose_lease_expired_cannot_complete_the_job_it_lost() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "q-fence").await;
    enqueue_many(&app, org.id, "fence_test", 1).await;
    let first = claim(&app, "worker-a", "fence_test").await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    // Not claimable again while leased.
    assert!(claim(&app, "worker-b", "fence_test").await.is_empty());
    // Worker a stalls past its lease.
    app.db
        .admin()
        .await
        .execute(
            "update jobs set lease_expires_at = now() - interval '1 second' where kind = 'fence_test'",
            &[],
        )
        .await
        .unwrap();
    let second = claim(&app, "worker-b", "fence_test").await;
    assert_eq!(second.len(), 1, "the expired job is rescued");
    assert_eq!(second[0].attempt, 2);

    // a's late completion is refused, and its heartbeat learns it lost the job.
    let tx = system_tx(&app, Some(org.id)).await;
    assert!(!jobs::lock_run(&tx, &first[0]).await.unwrap());
    assert!(!jobs::complete(&tx, &first[0]).await.unwrap());
    tx.rollback().await.unwrap();
    let tx = system_tx(&app, None).await;
    let kept = tx
        .query(
            "select * from auth_private.extend_job_leases('worker-a', $1, 30)",
            &[&vec![first[0].id]],
        )
        .await
        .unwrap();
    assert!(kept.is_empty());
    tx.commit().await.unwrap();

    let tx = system_tx(&app, Some(org.id)).await;
    assert!(jobs::lock_run(&tx, &second[0]).await.unwrap());
    assert!(jobs::complete(&tx, &second[0]).await.unwrap());
    tx.commit().await.unwrap();
    let errors: serde_json::Value = app
        .db
        .admin()
        .await
        .query_one("select errors from jobs where kind = 'fence_test'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("lease expired: worker worker-a"),
        "{errors}"
    );

    // Claims, leases and releases are the server's own work: a tenant role gets nothing.
    let pool = app.state().engine.pool.clone();
    enqueue_many(&app, org.id, "fence_test", 1).await;
    let tx = trusted_tx(&pool, Some(org.id), Some(Role::Owner), Access::ReadWrite).await;
    let stolen = tx
        .query(
            "select * from auth_private.claim_jobs('intruder', array['fence_test'], 10, 60)",
            &[],
        )
        .await
        .unwrap();
    assert!(stolen.is_empty());
    // And a tenant cannot move a job on by hand (only `system` may update jobs).
    let moved = tx
        .execute(
            "update jobs set state = 'completed' where kind = 'fence_test' and state = 'available'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(moved, 0);
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_puts_unfinished_jobs_back_and_a_crash_is_rescued_by_lease() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "q-stop").await;
    let slow = TestHandler {
        kind: "slow_test",
        sleep: Some(Duration::from_secs(30)),
        ..TestHandler::default()
    };
    let ids = enqueue_many(&app, org.id, "slow_test", 1).await;
    let workers = start(&app, fast_workers(1, 5), &slow);
    wait_until("the job to start", Duration::from_secs(10), || async {
        job_states(&app, "slow_test").await.get("running") == Some(&1)
    })
    .await;
    let stopping = Instant::now();
    workers.shutdown(Duration::from_millis(300)).await;
    assert!(stopping.elapsed() < Duration::from_secs(5));
    let row = app
        .db
        .admin()
        .await
        .query_one(
            "select state, attempt, locked_by, last_error from jobs where id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "available", "back in the queue");
    assert_eq!(row.get::<_, i32>(1), 1);
    assert_eq!(row.get::<_, Option<String>>(2), None);
    assert!(row.get::<_, String>(3).contains("shut down"));

    // A worker that dies (no release, no heartbeats) loses the job when its lease expires, and
    // another worker runs it to completion.
    let crashing = start(&app, fast_workers(1, 5), &slow);
    wait_until("the job to run again", Duration::from_secs(10), || async {
        job_states(&app, "slow_test").await.get("running") == Some(&1)
    })
    .await;
    crashing.kill();
    let quick = TestHandler {
        kind: "slow_test",
        ..TestHandler::default()
    };
    let rescuer = start(&app, fast_workers(1, 5), &quick);
    wait_until(
        "the rescued job to complete",
        Duration::from_secs(15),
        || async { job_states(&app, "slow_test").await.get("completed") == Some(&1) },
    )
    .await;
    rescuer.shutdown(Duration::from_secs(1)).await;
    let attempt: i32 = app
        .db
        .admin()
        .await
        .query_one("select attempt from jobs where id = $1", &[&ids[0]])
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempt, 3, "shutdown, crash, rescue");
    assert_eq!(quick.runs.lock().unwrap().get(&ids[0]), Some(&vec![3]));
}

#[tokio::test]
async fn unique_keys_fold_twins_and_jobs_commit_with_their_transaction() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "q-unique").await;
    let pool = app.state().engine.pool.clone();
    let tx = trusted_tx(&pool, Some(org.id), Some(Role::Agent), Access::ReadWrite).await;
    let job = NewJob {
        unique_key: Some("ticket-1:v1".into()),
        ..NewJob::new("unique_test", json!({}))
    };
    let first = jobs::enqueue(&tx, &job).await.unwrap();
    let twin = jobs::enqueue(&tx, &job).await.unwrap();
    assert!(matches!(first, jobs::Enqueued::New(_)));
    assert_eq!(twin, jobs::Enqueued::Existing(first.id()));
    tx.rollback().await.unwrap();
    // Rolled back with its transaction: nothing was queued.
    assert!(job_states(&app, "unique_test").await.is_empty());
    // A viewer may not enqueue, nor read the queue (args, provider errors); an agent may.
    enqueue_many(&app, org.id, "unique_test", 2).await;
    let tx = trusted_tx(&pool, Some(org.id), Some(Role::Viewer), Access::ReadWrite).await;
    let seen: i64 = tx
        .query_one("select count(*) from jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 0);
    let refused = jobs::enqueue(&tx, &NewJob::new("unique_test", json!({}))).await;
    assert!(refused.is_err());
    drop(tx);
    let tx = trusted_tx(&pool, Some(org.id), Some(Role::Agent), Access::ReadOnly).await;
    let seen: i64 = tx
        .query_one("select count(*) from jobs where kind = 'unique_test'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 2);
}

#[tokio::test]
async fn a_last_attempt_that_died_is_failed_through_its_handler_and_a_panic_is_a_failed_attempt() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "q-last").await;
    let slow = TestHandler {
        kind: "last_test",
        sleep: Some(Duration::from_secs(30)),
        ..TestHandler::default()
    };
    let ids = enqueue_with(&app, org.id, "last_test", 1, 1).await;
    let crashing = start(&app, fast_workers(1, 1), &slow);
    wait_until(
        "the only attempt to start",
        Duration::from_secs(10),
        || async { job_states(&app, "last_test").await.get("running") == Some(&1) },
    )
    .await;
    crashing.kill();
    // After the lease, the next worker does not run it again (no attempts left) but fails it through
    // its handler, which settles what the job held.
    let next = TestHandler {
        kind: "last_test",
        ..TestHandler::default()
    };
    let rescuer = start(&app, fast_workers(1, 1), &next);
    wait_until(
        "the job to be discarded",
        Duration::from_secs(15),
        || async { job_states(&app, "last_test").await.get("discarded") == Some(&1) },
    )
    .await;
    assert!(
        next.runs.lock().unwrap().is_empty(),
        "not run a second time"
    );
    assert_eq!(*next.failed_calls.lock().unwrap(), vec![(ids[0], true)]);
    rescuer.shutdown(Duration::from_secs(1)).await;

    // A handler that panics fails its attempt (retried), and the worker keeps its slot.
    let panicky = TestHandler {
        kind: "panic_test",
        panic_first: true,
        ..TestHandler::default()
    };
    let ids = enqueue_with(&app, org.id, "panic_test", 3, 3).await;
    let workers = start(&app, fast_workers(1, 3), &panicky);
    wait_until("the jobs to complete", Duration::from_secs(20), || async {
        job_states(&app, "panic_test").await.get("completed") == Some(&3)
    })
    .await;
    for id in &ids {
        assert_eq!(panicky.runs.lock().unwrap().get(id), Some(&vec![1, 2]));
    }
    assert_eq!(workers.stats().retried, 3);
    workers.shutdown(Duration::from_secs(1)).await;
}

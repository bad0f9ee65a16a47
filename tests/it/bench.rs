//! Benchmarks of the AI pipeline and the queue, run on demand (they print numbers, they assert none):
//!
//! ```sh
//! cargo test --release --test it -- --ignored --nocapture bench_
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deskgraph::app::start_workers;
use deskgraph::authz::Role;
use deskgraph::db::Access;
use deskgraph::jobs::{self, Job, NewJob};
use deskgraph::jobs::{BoxFuture, Handler, JobContext, JobError, Workers};
use serde_json::json;

use crate::common::{TestApp, org_fixture, trusted_tx};
use crate::queue::{fast_workers, wait_until};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Time from `createTicket` returning to its analysis being DONE, with the built-in provider and the
/// default worker settings (2 slots here, LISTEN/NOTIFY wake-ups), one ticket at a time and then in
/// bursts of 20.
#[tokio::test]
#[ignore = "benchmark: cargo test --release --test it -- --ignored --nocapture bench_"]
async fn bench_create_ticket_to_analysis_done() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "bench-ai").await;
    let cfg = deskgraph::jobs::WorkerConfig {
        workers: 2,
        ..deskgraph::jobs::WorkerConfig::default()
    };
    let workers = start_workers(&app.state(), &app.db.db_config(), &cfg)
        .unwrap()
        .unwrap();
    let admin = app.db.admin().await;
    let create = "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }";
    let done = |id: uuid::Uuid| {
        let admin = &admin;
        async move {
            admin
                .query_one(
                    "select status = 'done' from ticket_analyses where ticket_id = $1",
                    &[&id],
                )
                .await
                .unwrap()
                .get::<_, bool>(0)
        }
    };
    for (label, burst, rounds) in [
        ("one at a time", 1usize, 200usize),
        ("bursts of 20", 20, 10),
    ] {
        let mut latencies = Vec::new();
        for round in 0..rounds {
            let mut pending = Vec::new();
            for i in 0..burst {
                let data = app
                    .ok(
                        &org.agent,
                        create,
                        json!({"i": {"workspaceId": org.workspace, "title": format!("Refund {round}-{i}"),
                                     "description": "I was charged twice for my subscription, please refund."}}),
                    )
                    .await;
                let id: uuid::Uuid = data["createTicket"]["id"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                pending.push((id, Instant::now()));
            }
            // Poll every millisecond: the measurement's resolution.
            while !pending.is_empty() {
                let mut still = Vec::new();
                for (id, at) in pending {
                    if done(id).await {
                        latencies.push(at.elapsed());
                    } else {
                        still.push((id, at));
                    }
                }
                pending = still;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        latencies.sort();
        println!(
            "createTicket -> analysis DONE ({label}, n={}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latencies.len(),
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.last().unwrap().as_secs_f64() * 1e3,
        );
    }
    workers.shutdown(Duration::from_secs(5)).await;
}

#[derive(Clone)]
struct Noop(Arc<Mutex<u64>>);

impl Handler for Noop {
    fn kind(&self) -> &'static str {
        "bench_noop"
    }
    fn run<'a>(&'a self, ctx: &'a JobContext, job: &'a Job) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            ctx.finish(job).await?;
            *self.0.lock().unwrap() += 1;
            Ok(())
        })
    }
}

/// No-op jobs per second with 2 worker processes' worth of runtimes (4 slots each), over 5,000 jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --release --test it -- --ignored --nocapture bench_"]
async fn bench_noop_jobs_per_second_with_two_workers() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "bench-q").await;
    let pool = app.state().engine.pool.clone();
    const N: usize = 5_000;
    let tx = trusted_tx(&pool, Some(org.id), Some(Role::Agent), Access::ReadWrite).await;
    for i in 0..N {
        jobs::enqueue(&tx, &NewJob::new("bench_noop", json!({ "i": i })))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    drop(tx);
    let done = Arc::new(Mutex::new(0u64));
    let start = Instant::now();
    let workers: Vec<Workers> = (0..2)
        .map(|_| {
            Workers::start(
                pool.clone(),
                app.db.db_config().database_url.expose(),
                10_000,
                fast_workers(4, 3),
                vec![Arc::new(Noop(done.clone()))],
            )
            .unwrap()
        })
        .collect();
    // Counted in the database: a run's own counter could be cut short by an abort after its commit.
    let admin = app.db.admin().await;
    wait_until("all jobs", Duration::from_secs(600), || async {
        admin
            .query_one(
                "select count(*) from jobs where kind = 'bench_noop' and state = 'completed'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            >= N as i64
    })
    .await;
    let elapsed = start.elapsed();
    println!(
        "{N} no-op jobs with 2 workers x 4 slots: {:.2} s, {:.0} jobs/s",
        elapsed.as_secs_f64(),
        N as f64 / elapsed.as_secs_f64()
    );
    for w in workers {
        println!("  {:?}", w.stats());
        w.shutdown(Duration::from_secs(2)).await;
    }
}

/// Upsert and search latency against the real Qdrant at `QDRANT_URL` (1,000 tickets of one
/// organization, 256-dimension built-in embeddings, one request at a time), printed as p50/p99.
#[tokio::test]
#[ignore = "benchmark: QDRANT_URL=… cargo test --release --test it -- --ignored --nocapture bench_"]
async fn bench_qdrant_upsert_and_search_latency() {
    let Ok(url) = std::env::var("QDRANT_URL") else {
        eprintln!("bench_qdrant_upsert_and_search_latency: QDRANT_URL is not set");
        return;
    };
    let ai = deskgraph::ai::Ai::from_config(
        &deskgraph::ai::AiConfig {
            qdrant_url: url,
            qdrant_collection: format!("deskgraph_bench_{}", uuid::Uuid::new_v4().simple()),
            ..deskgraph::ai::AiConfig::default()
        },
        3,
    )
    .await
    .expect("Qdrant answers");
    let index = ai.index.as_ref().expect("Qdrant configured");
    let org = uuid::Uuid::new_v4();
    let topics = [
        "refund", "login", "invoice", "crash", "export", "password", "webhook", "billing",
    ];
    let tickets: Vec<deskgraph::support::repo::TicketRow> = (0..1_000)
        .map(|i| {
            let topic = topics[i % topics.len()];
            deskgraph::support::repo::TicketRow {
                id: uuid::Uuid::now_v7(),
                number: i as i64 + 1,
                workspace_id: org,
                title: format!("{topic} problem number {i}"),
                description: format!("The {topic} does not work for customer {i}; please help."),
                status: deskgraph::support::TicketStatus::Resolved,
                priority: deskgraph::support::TicketPriority::Medium,
                priority_source: deskgraph::support::PrioritySource::Default,
                requester_email: None,
                assignee_id: None,
                created_by: None,
                created_at: chrono::Utc::now(),
                updated_at: chrono::Utc::now(),
                resolved_at: None,
            }
        })
        .collect();
    let mut upserts = Vec::new();
    for t in &tickets {
        let vector = deskgraph::ai::builtin::embed(&format!("{}\n{}", t.title, t.description));
        let started = Instant::now();
        index.upsert(org, t, vector).await.expect("upsert");
        upserts.push(started.elapsed());
    }
    let mut searches = Vec::new();
    for t in &tickets {
        let started = Instant::now();
        let hits = index.nearest(org, t.id, &[], 5).await.expect("search");
        searches.push(started.elapsed());
        assert!(hits.is_some_and(|h| !h.is_empty()));
    }
    for (label, mut samples) in [("upsert", upserts), ("search", searches)] {
        samples.sort();
        println!(
            "qdrant {label}: n={} p50={:?} p99={:?}",
            samples.len(),
            percentile(&samples, 0.5),
            percentile(&samples, 0.99)
        );
    }
}

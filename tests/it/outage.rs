//! Database outages and timeouts: the route to PostgreSQL is cut while writes run (a proxy the test
//! owns), and a statement waits on a lock past the statement timeout. Every answer is either the
//! acknowledged result or a retryable 503 (`UNAVAILABLE` / `TIMEOUT`, with `Retry-After`); every
//! acknowledged write is in the database exactly once; the server recovers by itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deskgraph::ai::Ai;
use deskgraph::config::DbConfig;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::common::{
    Caller, TestApp, TestDb, cluster_addr, error_code, org_fixture, send_raw, server_config,
    via_port,
};
use crate::proxy::Proxy;
use crate::queue::{fast_workers, wait_until};

const CREATE: &str = "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id title } }";
const LIST: &str = "{ tickets(first: 5) { edges { node { id title workspace { name } } } } }";

/// What one request got.
#[derive(Debug)]
enum Answer {
    Ok,
    /// 503 with `extensions.code = UNAVAILABLE` and a `Retry-After` header.
    Unavailable,
    Other(u16, String),
}

async fn send(app: &TestApp, caller: &Caller, query: &str, variables: Value) -> Answer {
    let req = caller.apply(
        app.http
            .post(format!("{}/graphql", app.base))
            .json(&json!({"query": query, "variables": variables})),
    );
    let resp = send_raw(req).await;
    let body = resp.json();
    match (resp.status, error_code(&body).as_deref()) {
        (200, None) => Answer::Ok,
        (503, Some("UNAVAILABLE")) if resp.header("retry-after").is_some() => {
            assert!(body.get("data").is_none_or(Value::is_null), "{body}");
            Answer::Unavailable
        }
        (status, _) => Answer::Other(status, body.to_string()),
    }
}

async fn status_of(app: &TestApp, path: &str) -> u16 {
    app.http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A test database, a proxy in front of its cluster, and a configuration whose `DATABASE_URL` goes
/// through the proxy (and so, by default, its LISTEN connections too).
async fn behind_a_proxy() -> (TestDb, Proxy, DbConfig) {
    let db = TestDb::new().await;
    let (host, port) = cluster_addr();
    let target: SocketAddr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target).await;
    let mut db_cfg = db.db_config();
    db_cfg.database_url = via_port(&db.runtime_url, proxy.port).into();
    (db, proxy, db_cfg)
}

#[derive(Default)]
struct Tally {
    acknowledged: Vec<String>,
    /// Titles of writes answered 503.
    refused: Vec<String>,
    reads_ok: usize,
    reads_unavailable: usize,
    other: Vec<String>,
    /// When each answer came, relative to the start, and whether it succeeded.
    timeline: Vec<(Duration, bool)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cutting_the_route_to_the_database_gives_503s_loses_nothing_and_recovers() {
    let (db, proxy, db_cfg) = behind_a_proxy().await;
    // Everything the server does goes over the route: requests, job claims, both LISTENs.
    let app = TestApp::spawn_on(db, &db_cfg, server_config(), Ai::builtin()).await;
    let workers = deskgraph::app::start_workers(&app.state(), &db_cfg, &fast_workers(2, 10))
        .unwrap()
        .unwrap();
    let org = org_fixture(&app, "outage").await;
    let app = Arc::new(app);

    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut clients = Vec::new();
    for client in 0..6 {
        let (app, tally, running, agent, workspace) = (
            app.clone(),
            tally.clone(),
            running.clone(),
            org.agent.clone(),
            org.workspace.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut i = 0;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                if client % 3 == 2 {
                    let answer = send(&app, &agent, LIST, json!({})).await;
                    let mut t = tally.lock().await;
                    let ok = matches!(answer, Answer::Ok);
                    t.timeline.push((started.elapsed(), ok));
                    match answer {
                        Answer::Ok => t.reads_ok += 1,
                        Answer::Unavailable => t.reads_unavailable += 1,
                        Answer::Other(status, body) => t.other.push(format!("{status} {body}")),
                    }
                } else {
                    let title = format!("outage {client}-{i}");
                    let input = json!({"i": {"workspaceId": workspace, "title": title}});
                    let answer = send(&app, &agent, CREATE, input).await;
                    let mut t = tally.lock().await;
                    let ok = matches!(answer, Answer::Ok);
                    t.timeline.push((started.elapsed(), ok));
                    match answer {
                        Answer::Ok => t.acknowledged.push(title),
                        Answer::Unavailable => t.refused.push(title),
                        Answer::Other(status, body) => t.other.push(format!("{status} {body}")),
                    }
                }
                if matches!(tally.lock().await.timeline.last(), Some((_, false))) {
                    // A client that honours Retry-After would wait longer; this one keeps the load up.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.cut();
    let cut_at = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status_of(&app, "/healthz").await, 200, "liveness stays up");
    assert_eq!(status_of(&app, "/readyz").await, 503, "not ready while cut");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restore();
    let restored_at = started.elapsed();
    // The API recovers without a restart: requests succeed again soon after the route is back.
    wait_until(
        "a write acknowledged after the route came back",
        Duration::from_secs(20),
        || {
            let tally = tally.clone();
            async move {
                tally
                    .lock()
                    .await
                    .timeline
                    .iter()
                    .any(|(at, ok)| *ok && *at > restored_at)
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(status_of(&app, "/readyz").await, 200, "ready again");

    let tally = tally.lock().await;
    let recovered_after = tally
        .timeline
        .iter()
        .filter(|(at, ok)| *ok && *at > restored_at)
        .map(|(at, _)| *at - restored_at)
        .min()
        .unwrap();
    let failed_during: usize = tally
        .timeline
        .iter()
        .filter(|(at, ok)| !ok && *at >= cut_at)
        .count();
    assert!(
        tally.other.is_empty(),
        "answers other than 200 or 503 UNAVAILABLE: {:#?}",
        tally.other
    );
    assert!(failed_during > 0, "the cut must have met requests");
    assert!(!tally.acknowledged.is_empty());

    // Every acknowledged write is there exactly once; a refused one is there at most once (a COMMIT
    // cut off on its way back may have been applied: the client cannot know, nor can the server).
    let admin = app.db.admin().await;
    let rows = admin
        .query(
            "select title, count(*) from tickets where org_id = $1 and title like 'outage %' group by title",
            &[&org.id],
        )
        .await
        .unwrap();
    let stored: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let lost: Vec<&String> = tally
        .acknowledged
        .iter()
        .filter(|t| !stored.contains_key(*t))
        .collect();
    let duplicated: Vec<(&String, &i64)> = stored.iter().filter(|(_, n)| **n > 1).collect();
    let refused_but_applied = tally
        .refused
        .iter()
        .filter(|t| stored.contains_key(*t))
        .count();
    eprintln!(
        "outage: {} writes acknowledged, {} refused with 503 ({} of them applied: COMMIT cut on its way \
         back), {} reads ok, {} reads 503; lost {}, duplicated {}; first success {:?} after the route \
         came back (cut for {:?})",
        tally.acknowledged.len(),
        tally.refused.len(),
        refused_but_applied,
        tally.reads_ok,
        tally.reads_unavailable,
        lost.len(),
        duplicated.len(),
        recovered_after,
        restored_at - cut_at,
    );
    assert!(lost.is_empty(), "acknowledged but missing: {lost:?}");
    assert!(duplicated.is_empty(), "applied twice: {duplicated:?}");
    assert_eq!(
        stored.len(),
        tally.acknowledged.len() + refused_but_applied,
        "nothing the clients did not send"
    );

    // The job workers survived: a ticket filed now is analysed.
    let created = app
        .ok(
            &org.agent,
            "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }",
            json!({"i": {"workspaceId": org.workspace, "title": "after the outage", "description": "Login fails"}}),
        )
        .await;
    let id = created["createTicket"]["id"].as_str().unwrap().to_owned();
    wait_until(
        "the analysis of a ticket filed after the outage",
        Duration::from_secs(30),
        || {
            let (app, agent, id) = (app.clone(), org.agent.clone(), id.clone());
            async move {
                let data = app
                    .ok(
                        &agent,
                        "query($id: ID!) { ticket(id: $id) { analysis { status } } }",
                        json!({"id": id}),
                    )
                    .await;
                data["ticket"]["analysis"]["status"] == "DONE"
            }
        },
    )
    .await;
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_statement_past_its_timeout_is_a_retryable_timeout_and_changes_nothing() {
    let db = TestDb::new().await;
    let mut db_cfg = db.db_config();
    db_cfg.statement_timeout_ms = 300;
    let app = TestApp::spawn_on(db, &db_cfg, server_config(), Ai::builtin()).await;
    let org = org_fixture(&app, "timeouts").await;

    // Another session holds the ticket's row lock, so the update waits past the statement timeout.
    let mut admin = app.db.admin().await;
    let holder = admin.transaction().await.unwrap();
    let ticket: uuid::Uuid = org.ticket.parse().unwrap();
    holder
        .execute("select 1 from tickets where id = $1 for update", &[&ticket])
        .await
        .unwrap();
    let update = "mutation($id: ID!, $i: UpdateTicketInput!) { updateTicket(id: $id, input: $i) { id title } }";
    let input = json!({"id": org.ticket, "i": {"title": "changed under a lock"}});
    let req = org.agent.apply(
        app.http
            .post(format!("{}/graphql", app.base))
            .json(&json!({"query": update, "variables": input})),
    );
    let resp = send_raw(req).await;
    let body = resp.json();
    assert_eq!(resp.status, 503, "{body}");
    assert_eq!(error_code(&body).as_deref(), Some("TIMEOUT"), "{body}");
    assert_eq!(
        body["errors"].as_array().unwrap().len(),
        1,
        "one error for the whole operation: {body}"
    );
    assert!(resp.header("retry-after").is_some());
    holder.rollback().await.unwrap();

    let title: String = admin
        .query_one("select title from tickets where id = $1", &[&ticket])
        .await
        .unwrap()
        .get(0);
    assert_ne!(
        title, "changed under a lock",
        "a timed-out write changes nothing"
    );
    // Once the lock is gone the same request succeeds.
    let data = app.ok(&org.agent, update, input).await;
    assert_eq!(data["updateTicket"]["title"], "changed under a lock");
}

#[tokio::test]
async fn a_route_that_goes_silent_gets_503_within_the_deadline_and_recovers() {
    let (db, proxy, mut db_cfg) = behind_a_proxy().await;
    db_cfg.database_listen_url = db.runtime_url.clone().into();
    db_cfg.statement_timeout_ms = 500;
    let app = TestApp::spawn_on(db, &db_cfg, server_config(), Ai::builtin()).await;
    let org = org_fixture(&app, "silent").await;
    assert_eq!(app.state().engine.deadline(), Duration::from_secs(6));

    proxy.stall();
    // Without the deadline these would wait for TCP to give up: minutes. The client's own timeout
    // only keeps a regression from hanging the suite.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let req = org.agent.apply(
        http.post(format!("{}/graphql", app.base))
            .json(&json!({"query": LIST})),
    );
    let resp = send_raw(req).await;
    let body = resp.json();
    assert_eq!(resp.status, 503, "{body}");
    assert_eq!(error_code(&body).as_deref(), Some("UNAVAILABLE"), "{body}");
    assert!(resp.header("retry-after").is_some());

    proxy.restore();
    let app = Arc::new(app);
    wait_until(
        "a request answered after the route came back",
        Duration::from_secs(20),
        || {
            let (app, agent) = (app.clone(), org.agent.clone());
            async move { matches!(send(&app, &agent, LIST, json!({})).await, Answer::Ok) }
        },
    )
    .await;
}

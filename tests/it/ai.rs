//! The AI triage pipeline end to end: GraphQL over HTTP, the queue, real workers, credits, and the
//! OpenAI-compatible provider against an in-process fake server.

use std::sync::Arc;
use std::time::Duration;

use deskgraph::ai::vectors::{Hit, hydrate};
use deskgraph::ai::{Ai, AiConfig};
use deskgraph::app::start_workers;
use deskgraph::authz::Role;
use deskgraph::db::Access;
use deskgraph::jobs::{WorkerConfig, Workers};
use deskgraph::support::TicketStatus;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{
    OrgFixture, TestApp, error_code, org_fixture, server_config, skip_visibly, trusted_tx,
};
use crate::fake_openai::{FakeOpenAi, Reply, triage_json};
use crate::queue::{fast_workers, wait_until};

const CREATE: &str = "mutation($i: CreateTicketInput!) {
    createTicket(input: $i) { id priority prioritySource analysis { id status creditsHeld } } }";

const TICKET: &str = "query($id: ID!) { ticket(id: $id) {
    priority prioritySource
    analysis { id status priority category skills sentiment language summary suggestedReply confidence
               provider model promptVersion creditsHeld creditsCharged promptTokens completionTokens
               attempts error reason }
    analyses { id status } } }";

async fn create_ticket(
    app: &TestApp,
    org: &OrgFixture,
    title: &str,
    description: &str,
    priority: Option<&str>,
) -> Value {
    let mut input =
        json!({"workspaceId": org.workspace, "title": title, "description": description});
    if let Some(p) = priority {
        input["priority"] = json!(p);
    }
    app.ok(&org.agent, CREATE, json!({ "i": input })).await["createTicket"].clone()
}

async fn ticket(app: &TestApp, org: &OrgFixture, id: &str) -> Value {
    app.ok(&org.agent, TICKET, json!({ "id": id })).await["ticket"].clone()
}

async fn wait_for_status(app: &TestApp, org: &OrgFixture, id: &str, status: &str) -> Value {
    wait_until(
        &format!("analysis {status}"),
        Duration::from_secs(30),
        || async { ticket(app, org, id).await["analysis"]["status"] == status },
    )
    .await;
    ticket(app, org, id).await
}

fn workers(app: &TestApp, cfg: WorkerConfig) -> Workers {
    start_workers(&app.state(), &app.db.db_config(), &cfg)
        .unwrap()
        .unwrap()
}

/// (kind, amount, held_change) of the ledger entries tied to an analysis's hold, oldest first.
async fn hold_entries(app: &TestApp, analysis_id: &str) -> Vec<(String, i64, i64)> {
    let id: Uuid = analysis_id.parse().unwrap();
    app.db
        .admin()
        .await
        .query(
            "select l.kind, l.amount, l.held_change from credit_ledger l
               join ticket_analyses a on a.org_id = l.org_id and (l.id = a.hold_id or l.hold_id = a.hold_id)
              where a.id = $1 order by l.created_at, l.id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn balance(app: &TestApp, org: &OrgFixture) -> (i64, i64) {
    let row = app
        .db
        .admin()
        .await
        .query_one(
            "select balance, held from credit_balances where org_id = $1",
            &[&org.id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn fake_ai(fake: &FakeOpenAi, timeout_secs: u64, retries: u32, max_attempts: i32) -> Arc<Ai> {
    Ai::from_config(
        &AiConfig {
            openai_api_key: "sk-test".into(),
            openai_base_url: fake.url.clone(),
            llm_model: "fake-model".into(),
            llm_timeout_secs: timeout_secs,
            llm_max_retries: retries,
            prices: "fake-model=5:100".into(),
            ..AiConfig::default()
        },
        max_attempts,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn tickets_are_analysed_in_the_background_with_the_builtin_provider() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "ai-builtin").await;
    let before = balance(&app, &org).await;

    // The request returns at once: the analysis is queued and paid for (held), not done.
    let created = create_ticket(
        &app,
        &org,
        "Production is down",
        "Every page returns a 500 error since this morning. This is unacceptable!",
        None,
    )
    .await;
    assert_eq!(created["analysis"]["status"], "PENDING");
    assert_eq!(created["analysis"]["creditsHeld"], "1");
    assert_eq!(created["prioritySource"], "DEFAULT");
    let id = created["id"].as_str().unwrap().to_owned();
    // A priority given by a person is theirs to keep.
    let human = create_ticket(
        &app,
        &org,
        "Invoice has the wrong VAT",
        "I was charged twice, this is terrible.",
        Some("LOW"),
    )
    .await;
    assert_eq!(balance(&app, &org).await, (before.0 - 2, before.1 + 2));

    let w = workers(&app, fast_workers(2, 3));
    let done = wait_for_status(&app, &org, &id, "DONE").await;
    let a = &done["analysis"];
    assert_eq!(a["priority"], "CRITICAL");
    assert_eq!(a["category"], "bug");
    assert_eq!(a["sentiment"], "negative");
    assert_eq!(a["language"], "eng");
    assert_eq!(a["provider"], "builtin");
    assert_eq!(a["promptVersion"], "triage-v2");
    assert_eq!(a["creditsCharged"], "1");
    assert_eq!(a["attempts"], 1);
    assert_eq!(a["reason"], "created");
    assert!(
        a["summary"]
            .as_str()
            .unwrap()
            .starts_with("Production is down")
    );
    assert!(!a["suggestedReply"].as_str().unwrap().is_empty());
    assert!(a["error"].is_null());
    // The AI priority was applied, since nobody had chosen one.
    assert_eq!(done["priority"], "CRITICAL");
    assert_eq!(done["prioritySource"], "AI");

    let human_id = human["id"].as_str().unwrap();
    let human_done = wait_for_status(&app, &org, human_id, "DONE").await;
    assert_eq!(human_done["analysis"]["priority"], "HIGH");
    assert_eq!(human_done["priority"], "LOW", "a person's priority stands");
    assert_eq!(human_done["prioritySource"], "HUMAN");

    // Held, then captured: one HOLD and one CAPTURE each, nothing held any more.
    assert_eq!(
        hold_entries(&app, a["id"].as_str().unwrap()).await,
        vec![("HOLD".into(), -1, 1), ("CAPTURE".into(), 0, -1)]
    );
    wait_for_status(&app, &org, &org.ticket, "DONE").await;
    assert_eq!(balance(&app, &org).await, (before.0 - 2, 0));

    // Every write of the pipeline is in the audit trail, attributed to the server's own work.
    let audited: i64 = app
        .db
        .admin()
        .await
        .query_one(
            "select count(*) from audit_log where org_id = $1 and table_name = 'ticket_analyses'
                and actor_role = 'system'",
            &[&org.id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(audited >= 4, "{audited} system-written analysis entries");
    w.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_finished_analysis_is_announced_with_ids_only() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "ai-notify").await;
    let (client, mut connection) = tokio_postgres::connect(
        app.db.db_config().database_url.expose(),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        use futures_util::StreamExt as _;
        while let Some(Ok(msg)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = msg {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    client.batch_execute("listen deskgraph_live").await.unwrap();
    let created = create_ticket(&app, &org, "Refund please", "Charged twice.", None).await;
    let w = workers(&app, fast_workers(1, 3));
    let (channel, payload) = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let (channel, payload) = rx.recv().await.unwrap();
            let parsed: Value = serde_json::from_str(&payload).unwrap();
            if parsed["kind"] == "analyzed" && parsed["ticket_id"] == created["id"] {
                return (channel, parsed);
            }
        }
    })
    .await
    .expect("a notification arrives");
    assert_eq!(channel, "deskgraph_live");
    assert_eq!(payload["org_id"], org.id.to_string());
    // Ids, the kind and the time only: nothing of the ticket or its analysis.
    let mut keys: Vec<&str> = payload
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["at", "comment_id", "kind", "org_id", "ticket_id"],
        "{payload}"
    );
    assert!(payload["comment_id"].is_null());
    w.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn reanalysis_joins_an_open_run_and_is_for_agents_of_the_organization() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "ai-again").await;
    let other = org_fixture(&app, "ai-again-other").await;
    let created = create_ticket(&app, &org, "Login broken", "Cannot sign in.", None).await;
    let id = created["id"].as_str().unwrap();
    let again = "mutation($id: ID!) { reanalyzeTicket(id: $id) { id status reason } }";
    // Still queued: the same run, not a second hold.
    let first = app.ok(&org.agent, again, json!({ "id": id })).await;
    assert_eq!(first["reanalyzeTicket"]["id"], created["analysis"]["id"]);
    let w = workers(&app, fast_workers(1, 3));
    wait_for_status(&app, &org, id, "DONE").await;
    // Done: asking again starts (and pays for) a new run.
    let second = app.ok(&org.agent, again, json!({ "id": id })).await;
    assert_ne!(second["reanalyzeTicket"]["id"], created["analysis"]["id"]);
    assert_eq!(second["reanalyzeTicket"]["reason"], "reanalyze");
    wait_until("the second run", Duration::from_secs(20), || async {
        let t = ticket(&app, &org, id).await;
        t["analyses"].as_array().unwrap().len() == 2 && t["analysis"]["status"] == "DONE"
    })
    .await;
    w.shutdown(Duration::from_secs(2)).await;

    let (_, body) = app.post(&org.viewer, again, json!({ "id": id })).await;
    assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"));
    let (_, body) = app.post(&other.agent, again, json!({ "id": id })).await;
    assert_eq!(error_code(&body).as_deref(), Some("NOT_FOUND"));
    let (_, body) = app.post(&org.agent, again, json!({ "id": "nope" })).await;
    assert_eq!(error_code(&body).as_deref(), Some("BAD_USER_INPUT"));
    let (_, body) = app
        .post(
            &org.agent,
            "query($id: ID!) { ticket(id: $id) { similarTickets(limit: 0) { score } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(error_code(&body).as_deref(), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn without_credits_the_analysis_waits_and_runs_once_credits_are_granted() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "ai-broke").await;
    // Spend everything on an unrelated hold.
    let pool = app.state().engine.pool.clone();
    let tx = trusted_tx(&pool, Some(org.id), Some(Role::Owner), Access::ReadWrite).await;
    let available = deskgraph::billing::repo::balance(&tx)
        .await
        .unwrap()
        .balance;
    deskgraph::billing::repo::hold(&tx, available, "drain", None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    drop(tx);

    let created = create_ticket(&app, &org, "Refund", "I was charged twice.", None).await;
    assert_eq!(created["analysis"]["status"], "INSUFFICIENT_CREDITS");
    assert_eq!(created["analysis"]["creditsHeld"], "0");
    let id = created["id"].as_str().unwrap();
    let queued: i64 = app
        .db
        .admin()
        .await
        .query_one(
            "select count(*) from jobs where org_id = $1 and args->>'ticket_id' = $2",
            &[&org.id, &id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 0, "no job without credits");

    // Asking again while it waits joins the waiting analysis: nothing more is held or queued later.
    let again = app
        .ok(
            &org.agent,
            "mutation($id: ID!) { reanalyzeTicket(id: $id) { id status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(again["reanalyzeTicket"]["id"], created["analysis"]["id"]);
    let w = workers(&app, fast_workers(1, 3));
    app.ok(
        &org.owner,
        "mutation { grantCredits(input: {amount: 3, idempotencyKey: \"top-up\"}) { balance } }",
        json!({}),
    )
    .await;
    let done = wait_for_status(&app, &org, id, "DONE").await;
    assert_eq!(done["analysis"]["creditsCharged"], "1");
    assert_eq!(
        done["analysis"]["id"], created["analysis"]["id"],
        "the same analysis, resumed"
    );
    assert_eq!(balance(&app, &org).await.0, 2);
    let t = ticket(&app, &org, id).await;
    assert_eq!(t["analyses"].as_array().unwrap().len(), 1);
    w.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn the_openai_provider_uses_structured_outputs_and_is_charged_once_after_a_429() {
    let fake = FakeOpenAi::start().await;
    fake.script([
        Reply::Status(429, Some("0")),
        Reply::Content(triage_json("critical")),
    ]);
    let ai = fake_ai(&fake, 5, 2, 3).await;
    let app = TestApp::spawn_with_ai(server_config(), ai).await;
    let org = org_fixture(&app, "ai-openai").await;
    // The fixture's own ticket took the first two replies: from here on, answers are `high`.
    let w = workers(&app, fast_workers(1, 3));
    wait_for_status(&app, &org, &org.ticket, "DONE").await;
    let before = balance(&app, &org).await;
    let created = create_ticket(&app, &org, "Double charge", "Charged twice.", None).await;
    assert_eq!(created["analysis"]["creditsHeld"], "5");
    let id = created["id"].as_str().unwrap();
    let done = wait_for_status(&app, &org, id, "DONE").await;
    let a = &done["analysis"];
    assert_eq!(a["provider"], "openai");
    assert_eq!(a["model"], "fake-model");
    assert_eq!(a["priority"], "HIGH");
    assert_eq!(a["skills"], json!(["billing", "refunds"]));
    assert_eq!(a["promptTokens"], 120);
    assert_eq!(a["completionTokens"], 80);
    // 200 tokens at one credit per 100: 2 of the 5 held.
    assert_eq!(a["creditsCharged"], "2");
    assert_eq!(balance(&app, &org).await, (before.0 - 2, before.1));

    // The fixture's ticket: a 429, then success, one analysis charged once.
    let first = ticket(&app, &org, &org.ticket).await;
    assert_eq!(first["analysis"]["priority"], "CRITICAL");
    assert_eq!(
        first["analysis"]["attempts"], 1,
        "retried inside one attempt"
    );
    let entries = hold_entries(&app, first["analysis"]["id"].as_str().unwrap()).await;
    assert_eq!(
        entries.iter().filter(|e| e.0 == "CAPTURE").count(),
        1,
        "{entries:?}"
    );

    let requests = fake.chat_requests();
    assert_eq!(requests.len(), 3, "429, success, success");
    let format = &requests[0]["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["strict"], true);
    assert_eq!(
        format["json_schema"]["schema"]["additionalProperties"],
        false
    );
    assert_eq!(requests[0]["model"], "fake-model");
    assert!(fake.authorization().iter().all(|a| a == "Bearer sk-test"));
    w.shutdown(Duration::from_secs(2)).await;
}

async fn failing_run(reply: Reply, timeout_secs: u64) -> (Value, Vec<(String, i64, i64)>, i64) {
    let fake = FakeOpenAi::start().await;
    fake.default_reply(reply);
    let ai = fake_ai(&fake, timeout_secs, 1, 2).await;
    let app = TestApp::spawn_with_ai(server_config(), ai).await;
    let org = org_fixture(&app, "ai-fail").await;
    let before = balance(&app, &org).await;
    let w = workers(&app, fast_workers(1, 2));
    let done = wait_for_status(&app, &org, &org.ticket, "FAILED").await;
    w.shutdown(Duration::from_secs(2)).await;
    let entries = hold_entries(&app, done["analysis"]["id"].as_str().unwrap()).await;
    // Everything held was given back.
    let after = balance(&app, &org).await;
    assert_eq!(after, (before.0 + 5, before.1 - 5));
    let discarded: i64 = app
        .db
        .admin()
        .await
        .query_one(
            "select count(*) from jobs where kind = 'analyze_ticket' and state = 'discarded'
                and jsonb_array_length(errors) = 2",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    (done["analysis"].clone(), entries, discarded)
}

#[tokio::test]
async fn a_provider_that_keeps_failing_releases_the_hold_and_fails_the_analysis() {
    let (a, entries, discarded) = failing_run(Reply::Status(500, None), 5).await;
    assert_eq!(a["status"], "FAILED");
    assert_eq!(a["creditsCharged"], "0");
    assert_eq!(a["attempts"], 2);
    let error = a["error"].as_str().unwrap();
    assert!(error.contains("failed after 2 attempt(s)"), "{error}");
    assert!(error.contains("500"), "{error}");
    assert_eq!(
        entries,
        vec![("HOLD".into(), -5, 5), ("RELEASE".into(), 5, -5)]
    );
    assert_eq!(discarded, 1);
}

#[tokio::test]
async fn output_that_does_not_fit_the_schema_is_retried_then_fails_clearly() {
    let (a, entries, _) = failing_run(
        Reply::Content(r#"{"priority": "urgent!!", "category": "billing"}"#.into()),
        5,
    )
    .await;
    assert_eq!(a["status"], "FAILED");
    assert!(
        a["error"]
            .as_str()
            .unwrap()
            .contains("does not fit the schema"),
        "{a}"
    );
    assert_eq!(entries.last().unwrap().0, "RELEASE");

    let (a, _, _) = failing_run(Reply::Garbage, 5).await;
    assert!(
        a["error"].as_str().unwrap().contains("not valid JSON"),
        "{a}"
    );
}

#[tokio::test]
async fn a_provider_that_times_out_fails_the_analysis_with_a_timeout() {
    let (a, entries, _) = failing_run(Reply::Hang(Duration::from_secs(3)), 1).await;
    assert_eq!(a["status"], "FAILED");
    assert!(a["error"].as_str().unwrap().contains("timed out"), "{a}");
    assert_eq!(entries.last().unwrap().0, "RELEASE");
}

#[tokio::test]
async fn a_worker_killed_mid_analysis_is_replaced_and_the_ticket_is_charged_once() {
    let fake = FakeOpenAi::start().await;
    // The first request hangs (the worker dies waiting); later ones answer.
    fake.script([Reply::Hang(Duration::from_secs(8))]);
    let ai = fake_ai(&fake, 30, 0, 3).await;
    let app = TestApp::spawn_with_ai(server_config(), ai).await;
    let org = org_fixture(&app, "ai-crash").await;
    let before = balance(&app, &org).await;
    let doomed = workers(&app, fast_workers(1, 3));
    wait_for_status(&app, &org, &org.ticket, "RUNNING").await;
    doomed.kill();
    let rescuer = workers(&app, fast_workers(1, 3));
    let done = wait_for_status(&app, &org, &org.ticket, "DONE").await;
    rescuer.shutdown(Duration::from_secs(2)).await;
    assert_eq!(done["analysis"]["attempts"], 2);
    let entries = hold_entries(&app, done["analysis"]["id"].as_str().unwrap()).await;
    assert_eq!(
        entries,
        vec![
            ("HOLD".into(), -5, 5),
            ("CAPTURE".into(), 0, -2),
            ("RELEASE".into(), 3, -3)
        ]
    );
    assert_eq!(balance(&app, &org).await, (before.0 + 3, before.1 - 5));
    // Let the dead worker's request finish: nothing it could do changes the outcome.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        hold_entries(&app, done["analysis"]["id"].as_str().unwrap())
            .await
            .len(),
        3
    );
}

async fn resolve(app: &TestApp, org: &OrgFixture, title: &str, description: &str) -> String {
    let id = create_ticket(app, org, title, description, Some("MEDIUM")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        &org.agent,
        "mutation($id: ID!) { updateTicket(id: $id, input: {status: RESOLVED}) { id } }",
        json!({ "id": id }),
    )
    .await;
    id
}

/// [`refund_tickets`], analysed (DONE) and with their vector payloads synced (status changes reach
/// Qdrant through `sync_ticket_vector` jobs): `(A's refund, B's refund, A's open ticket)`.
async fn analysed_refund_tickets(
    app: &TestApp,
    a: &OrgFixture,
    b: &OrgFixture,
) -> (String, String, String) {
    let (a_refund, b_refund, open_id) = refund_tickets(app, a, b).await;
    for (org, id) in [(a, &a_refund), (b, &b_refund), (a, &open_id)] {
        wait_for_status(app, org, id, "DONE").await;
    }
    wait_until("vector payloads synced", Duration::from_secs(20), || async {
        app.db.admin().await
            .query_one("select count(*) from jobs where kind = 'sync_ticket_vector' and state <> 'completed'", &[])
            .await.unwrap().get::<_, i64>(0) == 0
    })
    .await;
    (a_refund, b_refund, open_id)
}

/// The same resolved refund ticket in A and in B, and an open one in A like them: (A's resolved, B's
/// resolved, A's open).
async fn refund_tickets(app: &TestApp, a: &OrgFixture, b: &OrgFixture) -> (String, String, String) {
    let resolved = "Card charged twice, refund issued.";
    let a_refund = resolve(app, a, "Refund for double charge", resolved).await;
    let b_refund = resolve(app, b, "Refund for double charge", resolved).await;
    let open = create_ticket(
        app,
        a,
        "Charged twice",
        "My card was charged twice, I want a refund.",
        None,
    )
    .await;
    let open_id = open["id"].as_str().unwrap().to_owned();
    (a_refund, b_refund, open_id)
}

const SIMILAR: &str = "query($id: ID!, $s: [TicketStatus!]) { ticket(id: $id) {
    similarTickets(limit: 5, statuses: $s) { score source ticket { id title status } } } }";

/// A Qdrant server of the test's own (`DESKGRAPH_TEST_QDRANT_BIN`), on free ports and a storage
/// folder of its own, which the test can stop, pause and start again; killed and removed on drop.
struct QdrantServer {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    http_port: u16,
    grpc_port: u16,
    child: Option<std::process::Child>,
}

impl QdrantServer {
    /// Starts one, or says the test is skipped (visibly) and returns `None` when
    /// `DESKGRAPH_TEST_QDRANT_BIN` is not set.
    async fn start_or_skip(test: &str) -> Option<Self> {
        let Some(bin) = std::env::var_os("DESKGRAPH_TEST_QDRANT_BIN") else {
            skip_visibly(
                test,
                "DESKGRAPH_TEST_QDRANT_BIN is not set (no Qdrant binary to start and stop)",
            );
            return None;
        };
        // Both listeners held until both ports are known, so the two differ.
        let listeners: Vec<_> = (0..2)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        drop(listeners);
        let mut server = Self {
            bin: bin.into(),
            dir: std::env::temp_dir().join(format!("deskgraph-qdrant-{}", Uuid::new_v4().simple())),
            http_port: ports[0],
            grpc_port: ports[1],
            child: None,
        };
        std::fs::create_dir_all(&server.dir).unwrap();
        server.start().await;
        Some(server)
    }

    /// The gRPC URL (what `QDRANT_URL` takes).
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// Starts the server (again: same ports, same storage) and waits until it is ready.
    async fn start(&mut self) {
        assert!(self.child.is_none(), "Qdrant is already running");
        let log = std::fs::File::create(self.dir.join("qdrant.log")).unwrap();
        let child = std::process::Command::new(&self.bin)
            .current_dir(&self.dir)
            .env("QDRANT__STORAGE__STORAGE_PATH", self.dir.join("storage"))
            .env(
                "QDRANT__STORAGE__SNAPSHOTS_PATH",
                self.dir.join("snapshots"),
            )
            .env("QDRANT__SERVICE__HOST", "127.0.0.1")
            .env("QDRANT__SERVICE__HTTP_PORT", self.http_port.to_string())
            .env("QDRANT__SERVICE__GRPC_PORT", self.grpc_port.to_string())
            .env("QDRANT__TELEMETRY_DISABLED", "true")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let ready = format!("http://127.0.0.1:{}/readyz", self.http_port);
        let client = reqwest::Client::new();
        wait_until("Qdrant ready", Duration::from_secs(30), || async {
            client
                .get(&ready)
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        // The REST API may be ready a moment before the gRPC port listens.
        let grpc = ("127.0.0.1", self.grpc_port);
        wait_until("Qdrant's gRPC port", Duration::from_secs(30), || async {
            tokio::net::TcpStream::connect(grpc).await.is_ok()
        })
        .await;
    }

    /// Kills the server outright (an outage, not a shutdown).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal to the running server (`STOP` pauses it: it accepts connections and answers
    /// nothing, a slow Qdrant; `CONT` resumes it).
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("Qdrant is running").id();
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }
}

impl Drop for QdrantServer {
    fn drop(&mut self) {
        // SIGKILL ends a paused server too.
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn similar_tickets_come_only_from_the_callers_organization() {
    let app = TestApp::spawn().await;
    let a = org_fixture(&app, "sim-a").await;
    let b = org_fixture(&app, "sim-b").await;
    let (a_refund, b_refund, open_id) = refund_tickets(&app, &a, &b).await;
    let open_id = open_id.as_str();
    let a_other = resolve(&app, &a, "Dark mode", "Please add a dark theme.").await;

    let data = app
        .ok(
            &a.agent,
            SIMILAR,
            json!({ "id": open_id, "s": ["RESOLVED", "CLOSED"] }),
        )
        .await;
    let hits = data["ticket"]["similarTickets"].as_array().unwrap();
    let ids: Vec<&str> = hits
        .iter()
        .map(|h| h["ticket"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a_refund.as_str()], "{hits:?}");
    assert!(hits[0]["score"].as_f64().unwrap() > 0.0);
    assert_eq!(hits[0]["source"], "FULL_TEXT", "no Qdrant configured");
    // Without Qdrant there is no vector to follow an edit of the text: nothing is queued.
    app.ok(
        &a.agent,
        "mutation($id: ID!) { updateTicket(id: $id, input: {title: \"Charged twice!\"}) { id } }",
        json!({ "id": open_id }),
    )
    .await;
    assert_eq!(upsert_jobs(&app, open_id).await.len(), 0);
    assert!(!ids.contains(&a_other.as_str()));
    // The default statuses are RESOLVED and CLOSED; an open ticket is not "resolved".
    let data = app
        .ok(
            &a.agent,
            "query($id: ID!) { ticket(id: $id) { similarTickets { ticket { id } } } }",
            json!({ "id": a_refund }),
        )
        .await;
    assert!(
        data["ticket"]["similarTickets"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A search that forgot its org filter (a bug, or an index shared carelessly) returns B's ticket:
    // hydration under A's RLS drops it.
    let pool = app.state().engine.pool.clone();
    let tx = trusted_tx(&pool, Some(a.id), Some(Role::Agent), Access::ReadOnly).await;
    let forged = [
        Hit {
            ticket_id: b_refund.parse().unwrap(),
            score: 0.99,
        },
        Hit {
            ticket_id: a_refund.parse().unwrap(),
            score: 0.8,
        },
        Hit {
            ticket_id: b.ticket.parse().unwrap(),
            score: 0.7,
        },
    ];
    let kept = hydrate(&tx, &forged, &[], 10).await.unwrap();
    let kept: Vec<String> = kept.iter().map(|s| s.ticket.id.to_string()).collect();
    assert_eq!(kept, vec![a_refund.clone()]);
    let kept = hydrate(&tx, &forged, &[TicketStatus::Open], 10)
        .await
        .unwrap();
    assert!(kept.is_empty(), "status filter applied on current data");
    tx.rollback().await.unwrap();
}

/// Against a real Qdrant (`QDRANT_URL`, e.g. http://localhost:6334): vectors are stored with the
/// tenant payload, searches are filtered by organization, and an unfiltered search's foreign hits
/// are dropped by hydration.
#[tokio::test]
async fn qdrant_search_is_filtered_by_organization_and_hydrated_under_rls() {
    let Ok(url) = std::env::var("QDRANT_URL") else {
        skip_visibly(
            "ai::qdrant_search_is_filtered_by_organization_and_hydrated_under_rls",
            "QDRANT_URL is not set (no Qdrant server on this machine); the PostgreSQL full-text \
             path is tested instead",
        );
        return;
    };
    let collection = format!("deskgraph_test_{}", Uuid::new_v4().simple());
    let ai = Ai::from_config(
        &AiConfig {
            qdrant_url: url,
            qdrant_collection: collection,
            ..AiConfig::default()
        },
        3,
    )
    .await
    .expect("Qdrant at QDRANT_URL answers");
    let app = TestApp::spawn_with_ai(server_config(), ai.clone()).await;
    let a = org_fixture(&app, "qd-a").await;
    let b = org_fixture(&app, "qd-b").await;
    let w = workers(&app, fast_workers(2, 3));
    let (a_refund, b_refund, open_id) = analysed_refund_tickets(&app, &a, &b).await;
    let data = app
        .ok(
            &a.agent,
            SIMILAR,
            json!({ "id": open_id, "s": ["RESOLVED"] }),
        )
        .await;
    let ids: Vec<&str> = data["ticket"]["similarTickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["ticket"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a_refund.as_str()]);

    let index = ai.index.as_ref().unwrap();
    let vector =
        deskgraph::ai::builtin::embed("Charged twice\nMy card was charged twice, I want a refund.");
    let unfiltered = index.search_raw(vector, None, 10).await.unwrap();
    assert!(
        unfiltered
            .iter()
            .any(|h| h.ticket_id.to_string() == b_refund),
        "B's point is in the shared collection"
    );
    let pool = app.state().engine.pool.clone();
    let tx = trusted_tx(&pool, Some(a.id), Some(Role::Agent), Access::ReadOnly).await;
    let kept = hydrate(&tx, &unfiltered, &[], 10).await.unwrap();
    assert!(kept.iter().all(|s| s.ticket.id.to_string() != b_refund));
    // A filter forged to name B's organization finds B's point, and hydration under A drops it.
    let forged = qdrant_client::qdrant::Filter::must([qdrant_client::qdrant::Condition::matches(
        "org_id",
        b.id.to_string(),
    )]);
    let vector =
        deskgraph::ai::builtin::embed("Charged twice\nMy card was charged twice, I want a refund.");
    let forged_hits = index.search_raw(vector, Some(forged), 10).await.unwrap();
    assert!(
        forged_hits
            .iter()
            .any(|h| h.ticket_id.to_string() == b_refund),
        "the forged filter reaches B's point"
    );
    let kept = hydrate(&tx, &forged_hits, &[], 10).await.unwrap();
    assert!(
        kept.is_empty(),
        "nothing of B survives A's hydration: {kept:?}"
    );
    tx.rollback().await.unwrap();
    // A point id guessed from B's ticket id: A cannot even ask, the ticket is NOT_FOUND for A.
    let (_, body) = app
        .post(
            &a.agent,
            SIMILAR,
            json!({ "id": b_refund, "s": ["RESOLVED"] }),
        )
        .await;
    assert_eq!(error_code(&body).as_deref(), Some("NOT_FOUND"), "{body}");
    assert!(body["data"].is_null(), "{body}");
    assert!(!body.to_string().contains("Charged twice"), "{body}");
    w.shutdown(Duration::from_secs(2)).await;
}

/// (state, run_at in the future, errors recorded) of the `upsert_ticket_vector` jobs of a ticket.
async fn upsert_jobs(app: &TestApp, ticket_id: &str) -> Vec<(String, bool, i32)> {
    app.db
        .admin()
        .await
        .query(
            "select state, run_at > now(), jsonb_array_length(errors) from jobs
              where kind = 'upsert_ticket_vector' and args->>'ticket_id' = $1 order by created_at",
            &[&ticket_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn qdrant_ai(server: &QdrantServer) -> Arc<Ai> {
    Ai::from_config(
        &AiConfig {
            qdrant_url: server.url(),
            qdrant_collection: format!("deskgraph_test_{}", Uuid::new_v4().simple()),
            qdrant_search_timeout_ms: 500,
            ..AiConfig::default()
        },
        3,
    )
    .await
    .expect("our Qdrant answers")
}

/// `similarTickets` of `id` among `statuses`: (source of each hit, ids), and how long it took.
async fn similar(
    app: &TestApp,
    org: &OrgFixture,
    id: &str,
    statuses: &[&str],
) -> (Vec<String>, Vec<String>, Duration) {
    let started = std::time::Instant::now();
    let data = app
        .ok(&org.agent, SIMILAR, json!({ "id": id, "s": statuses }))
        .await;
    let took = started.elapsed();
    let hits = data["ticket"]["similarTickets"].as_array().unwrap();
    let field = |f: fn(&Value) -> &Value| {
        hits.iter()
            .map(|h| f(h).as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    (field(|h| &h["source"]), field(|h| &h["ticket"]["id"]), took)
}

/// Qdrant slow, then down: similar tickets still answer (from full-text search, within the timeout),
/// an analysis still completes and queues its vector, and once Qdrant is back the vector is stored
/// and searches use Qdrant again.
#[tokio::test]
async fn similar_tickets_and_analyses_outlive_a_qdrant_outage() {
    let test = "ai::similar_tickets_and_analyses_outlive_a_qdrant_outage";
    let Some(mut server) = QdrantServer::start_or_skip(test).await else {
        return;
    };
    let ai = qdrant_ai(&server).await;
    let app = TestApp::spawn_with_ai(server_config(), ai.clone()).await;
    let a = org_fixture(&app, "out-a").await;
    let b = org_fixture(&app, "out-b").await;
    let w = workers(&app, fast_workers(2, 3));
    let (a_refund, b_refund, open_id) = analysed_refund_tickets(&app, &a, &b).await;
    let (sources, ids, _) = similar(&app, &a, &open_id, &["RESOLVED"]).await;
    assert_eq!(
        (sources, ids),
        (vec!["VECTOR".into()], vec![a_refund.clone()])
    );

    // Slow (paused: connections are accepted, nothing answers): full-text search within the timeout.
    server.signal("STOP");
    let (sources, ids, took) = similar(&app, &a, &open_id, &["RESOLVED"]).await;
    server.signal("CONT");
    assert_eq!(
        (sources, ids),
        (vec!["FULL_TEXT".into()], vec![a_refund.clone()])
    );
    assert!(took < Duration::from_secs(3), "answered in {took:?}");

    // Down.
    server.kill();
    let (sources, ids, took) = similar(&app, &a, &open_id, &["RESOLVED"]).await;
    assert_eq!(
        (sources, ids),
        (vec!["FULL_TEXT".into()], vec![a_refund.clone()])
    );
    assert!(took < Duration::from_secs(3), "answered in {took:?}");

    // A ticket filed during the outage is analysed all the same; its vector waits in a job that retries.
    let new = create_ticket(
        &app,
        &a,
        "Refund for a double charge",
        "My card was charged twice last week, please refund one.",
        None,
    )
    .await;
    let new_id = new["id"].as_str().unwrap().to_owned();
    let done = wait_for_status(&app, &a, &new_id, "DONE").await;
    assert!(done["analysis"]["error"].is_null(), "{done}");
    assert_eq!(done["analysis"]["attempts"], 1);
    wait_until(
        "the vector job retrying",
        Duration::from_secs(20),
        || async {
            let jobs = upsert_jobs(&app, &new_id).await;
            jobs.len() == 1 && jobs[0].0 != "completed" && jobs[0].2 >= 1
        },
    )
    .await;
    let (sources, ids, _) = similar(&app, &a, &new_id, &["RESOLVED"]).await;
    assert_eq!(
        (sources, ids),
        (vec!["FULL_TEXT".into()], vec![a_refund.clone()])
    );

    // Back (same ports, same storage): the job stores the vector and searches use Qdrant again.
    server.start().await;
    wait_until(
        "the vector job completed",
        Duration::from_secs(30),
        || async {
            upsert_jobs(&app, &new_id)
                .await
                .first()
                .is_some_and(|j| j.0 == "completed")
        },
    )
    .await;
    let (sources, ids, _) = similar(&app, &a, &new_id, &["RESOLVED"]).await;
    assert_eq!(
        (sources, ids),
        (vec!["VECTOR".into()], vec![a_refund.clone()])
    );
    let (sources, ids, _) = similar(&app, &a, &open_id, &["OPEN", "RESOLVED"]).await;
    assert!(sources.iter().all(|s| s == "VECTOR"), "{sources:?}");
    assert!(ids.contains(&new_id), "{ids:?}");
    assert!(!ids.contains(&b_refund), "{ids:?}");
    let stored = ai
        .index
        .as_ref()
        .unwrap()
        .vector_of(new_id.parse().unwrap())
        .await
        .unwrap();
    assert!(stored.is_some(), "the new ticket's point is stored");
    w.shutdown(Duration::from_secs(2)).await;
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Editing a ticket's text re-embeds it: one debounced job however many quick edits, and the stored
/// vector then is the new text's. Other edits queue nothing.
#[tokio::test]
async fn editing_a_ticket_re_embeds_it_once_after_a_debounce() {
    let test = "ai::editing_a_ticket_re_embeds_it_once_after_a_debounce";
    let Some(server) = QdrantServer::start_or_skip(test).await else {
        return;
    };
    let ai = qdrant_ai(&server).await;
    let index = ai.index.as_ref().unwrap();
    let app = TestApp::spawn_with_ai(server_config(), ai.clone()).await;
    let org = org_fixture(&app, "reembed").await;
    let w = workers(&app, fast_workers(2, 3));
    let description = "The office printer jams on every page.";
    let created = create_ticket(&app, &org, "Printer jams", description, None).await;
    let id = created["id"].as_str().unwrap().to_owned();
    wait_for_status(&app, &org, &id, "DONE").await;
    let old = deskgraph::ai::builtin::embed(&format!("Printer jams\n{description}"));
    let stored = index.vector_of(id.parse().unwrap()).await.unwrap().unwrap();
    assert!(cosine(&stored, &old) > 0.999);

    let update =
        "mutation($id: ID!, $i: UpdateTicketInput!) { updateTicket(id: $id, input: $i) { id } }";
    // Neither a status change nor a title set to what it already is touches the vector.
    app.ok(
        &org.agent,
        update,
        json!({ "id": id, "i": { "status": "PENDING" } }),
    )
    .await;
    app.ok(
        &org.agent,
        update,
        json!({ "id": id, "i": { "title": "Printer jams" } }),
    )
    .await;
    assert_eq!(upsert_jobs(&app, &id).await, vec![]);

    let title = "Refund for a double charge";
    app.ok(
        &org.agent,
        update,
        json!({ "id": id, "i": { "title": "Refund" } }),
    )
    .await;
    app.ok(
        &org.agent,
        update,
        json!({ "id": id, "i": { "title": title } }),
    )
    .await;
    assert_eq!(
        upsert_jobs(&app, &id).await,
        vec![("available".to_owned(), true, 0)],
        "one job, waiting out the debounce"
    );
    wait_until(
        "the vector job completed",
        Duration::from_secs(20),
        || async {
            upsert_jobs(&app, &id)
                .await
                .first()
                .is_some_and(|j| j.0 == "completed")
        },
    )
    .await;
    let new = deskgraph::ai::builtin::embed(&format!("{title}\n{description}"));
    let stored = index.vector_of(id.parse().unwrap()).await.unwrap().unwrap();
    assert!(
        cosine(&stored, &new) > 0.999,
        "the vector is the new text's"
    );
    assert!(cosine(&stored, &old) < 0.99);
    assert_eq!(upsert_jobs(&app, &id).await.len(), 1);
    w.shutdown(Duration::from_secs(2)).await;
}

// ---------------------------------------------------------------------------------------------------
// Re-indexing (`deskgraph reindex`, the `reindex_vectors` job) and one collection per embedding model.

/// `QDRANT_URL`, or `None` after saying (visibly) that `test` is skipped.
fn qdrant_url_or_skip(test: &str) -> Option<String> {
    match std::env::var("QDRANT_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            skip_visibly(
                test,
                "QDRANT_URL is not set (no Qdrant server on this machine)",
            );
            None
        }
    }
}

/// The built-in pipeline with Qdrant, its collections named after `prefix`.
async fn builtin_qdrant_ai(url: &str, prefix: &str) -> Arc<Ai> {
    Ai::from_config(
        &AiConfig {
            qdrant_url: url.to_owned(),
            qdrant_collection: prefix.to_owned(),
            ..AiConfig::default()
        },
        3,
    )
    .await
    .expect("Qdrant at QDRANT_URL answers")
}

/// Workers of `ai`'s pipeline on `app`'s database (whatever pipeline the app itself was built with).
fn workers_of(app: &TestApp, ai: &Arc<Ai>) -> Workers {
    let db = app.db.db_config();
    Workers::start(
        app.state().engine.pool.clone(),
        db.database_url.expose(),
        db.statement_timeout_ms,
        fast_workers(2, 3),
        deskgraph::ai::handlers::handlers(ai),
    )
    .unwrap()
}

/// Queues a re-index of every organization (batches of `batch`), waits until it is over, and returns
/// each organization's totals (from the last batch's recorded result).
async fn reindex_all(
    app: &TestApp,
    batch: i64,
) -> std::collections::HashMap<Uuid, deskgraph::ai::reindex::ReindexStats> {
    let queued = deskgraph::ai::reindex::queue(&app.db.db_config(), None, batch)
        .await
        .unwrap();
    assert_eq!(queued.already, 0);
    let admin = app.db.admin().await;
    wait_until("the re-index", Duration::from_secs(60), || async {
        admin
            .query_one(
                "select count(*) from jobs where kind = 'reindex_vectors'
                    and state in ('available', 'running')",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 0
    })
    .await;
    let failed: i64 = admin
        .query_one(
            "select count(*) from jobs where kind = 'reindex_vectors' and state = 'discarded'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 0, "no re-index batch failed");
    let totals: std::collections::HashMap<_, _> = admin
        .query(
            "select distinct on (org_id) org_id, args->'result' from jobs
              where kind = 'reindex_vectors' and state = 'completed'
              order by org_id, finished_at desc",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let result: Value = r.get(1);
            assert!(result["next"].is_null(), "the last batch: {result}");
            (
                r.get::<_, Uuid>(0),
                serde_json::from_value(result["totals"].clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(totals.len(), queued.queued, "{totals:?}");
    totals
}

/// (ticket id, organization) of every ticket in the database.
async fn all_tickets(app: &TestApp) -> Vec<(Uuid, Uuid)> {
    app.db
        .admin()
        .await
        .query("select id, org_id from tickets order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn stats(
    seen: u64,
    embedded: u64,
    skipped: u64,
    refreshed: u64,
) -> deskgraph::ai::reindex::ReindexStats {
    deskgraph::ai::reindex::ReindexStats {
        seen,
        embedded,
        skipped,
        refreshed,
    }
}

#[tokio::test]
async fn reindex_fills_qdrant_for_a_database_analysed_without_it_and_then_embeds_nothing() {
    let test =
        "ai::reindex_fills_qdrant_for_a_database_analysed_without_it_and_then_embeds_nothing";
    let Some(url) = qdrant_url_or_skip(test) else {
        return;
    };
    // Tickets filed and analysed with no Qdrant: no vectors anywhere.
    let app = TestApp::spawn().await;
    let a = org_fixture(&app, "rx-a").await;
    let b = org_fixture(&app, "rx-b").await;
    let mut ids = vec![(a.ticket.clone(), &a), (b.ticket.clone(), &b)];
    for (org, n) in [(&a, 4), (&b, 2)] {
        for i in 0..n {
            let t = create_ticket(&app, org, &format!("Refund {i}"), "Charged twice.", None).await;
            ids.push((t["id"].as_str().unwrap().to_owned(), org));
        }
    }
    let w = workers(&app, fast_workers(2, 3));
    for (id, org) in &ids {
        wait_for_status(&app, org, id, "DONE").await;
    }
    w.shutdown(Duration::from_secs(2)).await;

    // Qdrant switched on: the collection starts empty, and a re-index fills it.
    let ai = builtin_qdrant_ai(&url, &format!("deskgraph_test_{}", Uuid::new_v4().simple())).await;
    let index = ai.index.as_ref().unwrap();
    assert!(
        index.collection().ends_with("__builtin_hash_256__256"),
        "{}",
        index.collection()
    );
    let tickets = all_tickets(&app).await;
    assert_eq!(tickets.len(), 8);
    let ticket_ids: Vec<Uuid> = tickets.iter().map(|t| t.0).collect();
    assert!(index.stored(&ticket_ids).await.unwrap().is_empty());
    let w = workers_of(&app, &ai);
    // Batches of 2: the organizations' runs take 3 and 2 batches, each a job of its own.
    let totals = reindex_all(&app, 2).await;
    assert_eq!(totals[&a.id], stats(5, 5, 0, 0));
    assert_eq!(totals[&b.id], stats(3, 3, 0, 0));
    let stored = index.stored(&ticket_ids).await.unwrap();
    assert_eq!(stored.len(), tickets.len());
    for (ticket, org) in &tickets {
        let point = &stored[ticket];
        assert_eq!(point.org_id.as_deref(), Some(org.to_string().as_str()));
        assert_eq!(point.content_hash.as_ref().map(String::len), Some(64));
        assert_eq!(point.status.as_deref(), Some("open"));
    }
    let batches: i64 = app
        .db
        .admin()
        .await
        .query_one(
            "select count(*) from jobs where kind = 'reindex_vectors' and state = 'completed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(batches, 5);
    // The vectors are those similar tickets are searched with.
    let data = app
        .ok(&a.agent, SIMILAR, json!({ "id": ids[2].0, "s": ["OPEN"] }))
        .await;
    assert!(
        !data["ticket"]["similarTickets"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{data}"
    );

    // Again: everything is current, nothing is embedded.
    let totals = reindex_all(&app, 2).await;
    assert_eq!(totals[&a.id], stats(5, 0, 5, 0));
    assert_eq!(totals[&b.id], stats(3, 0, 3, 0));
    assert_eq!(index.stored(&ticket_ids).await.unwrap(), stored);

    // Text edited and status changed behind the pipeline's back: only the edited one is embedded
    // again, the other's payload is refreshed.
    let admin = app.db.admin().await;
    let edited: Uuid = ids[2].0.parse().unwrap();
    let closed: Uuid = ids[3].0.parse().unwrap();
    admin
        .execute(
            "update tickets set title = 'Refund, edited' where id = $1",
            &[&edited],
        )
        .await
        .unwrap();
    admin
        .execute(
            "update tickets set status = 'closed' where id = $1",
            &[&closed],
        )
        .await
        .unwrap();
    let totals = reindex_all(&app, 256).await;
    assert_eq!(totals[&a.id], stats(5, 1, 4, 1));
    assert_eq!(totals[&b.id], stats(3, 0, 3, 0));
    let now = index.stored(&[edited, closed]).await.unwrap();
    assert_ne!(now[&edited].content_hash, stored[&edited].content_hash);
    assert_eq!(now[&closed].status.as_deref(), Some("closed"));
    assert_eq!(now[&closed].content_hash, stored[&closed].content_hash);
    w.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_changed_embedding_model_gets_a_collection_of_its_own() {
    use deskgraph::ai::vectors::{collection_name, slug};
    assert_eq!(
        collection_name("deskgraph_tickets", "text-embedding-3-small", 1536),
        "deskgraph_tickets__text_embedding_3_small__1536"
    );
    assert_eq!(slug("Nomic/Embed-Text:v1.5"), "nomic_embed_text_v1_5");
    assert_ne!(
        collection_name("p", "m", 256),
        collection_name("p", "m", 512)
    );
    let test = "ai::a_changed_embedding_model_gets_a_collection_of_its_own";
    let Some(url) = qdrant_url_or_skip(test) else {
        return;
    };
    let prefix = format!("deskgraph_test_{}", Uuid::new_v4().simple());
    let fake = FakeOpenAi::start().await;
    fake.default_reply(Reply::Content(triage_json("high")));
    let model_ai = |model: &'static str| {
        let (fake_url, url, prefix) = (fake.url.clone(), url.clone(), prefix.clone());
        async move {
            Ai::from_config(
                &AiConfig {
                    openai_api_key: "sk-test".into(),
                    openai_base_url: fake_url,
                    llm_model: "fake-model".into(),
                    embedding_model: model.into(),
                    qdrant_url: url,
                    qdrant_collection: prefix,
                    ..AiConfig::default()
                },
                3,
            )
            .await
            .unwrap()
        }
    };
    let (ai_a, ai_b) = (model_ai("embed-a").await, model_ai("embed-b").await);
    let builtin = builtin_qdrant_ai(&url, &prefix).await;
    let (index_a, index_b) = (ai_a.index.as_ref().unwrap(), ai_b.index.as_ref().unwrap());
    // Same dimension (the fake's 256), different models: different collections.
    assert_eq!(index_a.collection(), format!("{prefix}__embed_a__256"));
    assert_eq!(index_b.collection(), format!("{prefix}__embed_b__256"));
    assert_eq!(
        builtin.index.as_ref().unwrap().collection(),
        format!("{prefix}__builtin_hash_256__256")
    );

    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "rx-model").await;
    let created = create_ticket(&app, &org, "Refund", "Charged twice.", None).await;
    // Analysed without Qdrant first (an analysis with Qdrant stores the vector itself).
    let w = workers(&app, fast_workers(2, 3));
    for id in [org.ticket.as_str(), created["id"].as_str().unwrap()] {
        wait_for_status(&app, &org, id, "DONE").await;
    }
    w.shutdown(Duration::from_secs(2)).await;
    let tickets: Vec<Uuid> = all_tickets(&app).await.iter().map(|t| t.0).collect();
    assert_eq!(tickets.len(), 2);

    // Model A's re-index fills A's collection only.
    let w = workers_of(&app, &ai_a);
    assert_eq!(reindex_all(&app, 256).await[&org.id], stats(2, 2, 0, 0));
    w.shutdown(Duration::from_secs(2)).await;
    assert_eq!(index_a.stored(&tickets).await.unwrap().len(), 2);
    assert!(index_b.stored(&tickets).await.unwrap().is_empty());
    let probe = deskgraph::ai::builtin::embed("Refund\nCharged twice.");
    assert!(
        index_b
            .search_raw(probe.clone(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Moving to model B: A's vectors do not count as current for B; everything is embedded again,
    // into B's collection, with B's model.
    let embeddings_before = fake.embedding_requests().len();
    let w = workers_of(&app, &ai_b);
    assert_eq!(reindex_all(&app, 256).await[&org.id], stats(2, 2, 0, 0));
    w.shutdown(Duration::from_secs(2)).await;
    let requests = fake.embedding_requests();
    assert_eq!(
        requests.len(),
        embeddings_before + 1,
        "one embedder call per batch"
    );
    assert_eq!(requests.last().unwrap()["model"], "embed-b");
    assert_eq!(index_b.stored(&tickets).await.unwrap().len(), 2);
    assert_eq!(index_b.search_raw(probe, None, 10).await.unwrap().len(), 2);
}

/// `deskgraph reindex` from the command line, against a real Qdrant.
#[tokio::test]
async fn reindex_command_queues_one_job_per_organization() {
    let test = "ai::reindex_command_queues_one_job_per_organization";
    let Some(url) = qdrant_url_or_skip(test) else {
        return;
    };
    let app = TestApp::spawn().await;
    let a = org_fixture(&app, "rx-cli-a").await;
    let _b = org_fixture(&app, "rx-cli-b").await;
    let prefix = format!("deskgraph_test_{}", Uuid::new_v4().simple());
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_deskgraph"))
            .arg("reindex")
            .args(args)
            .env("DATABASE_URL", &app.db.runtime_url)
            .env("DATABASE_ADMIN_URL", &app.db.admin_url)
            .env("QDRANT_URL", &url)
            .env("DESKGRAPH_QDRANT_COLLECTION", &prefix)
            .env("DESKGRAPH_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("queued a re-index of 2 organization(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{prefix}__builtin_hash_256__256")),
        "{stdout}"
    );
    // Still queued: asking again adds nothing.
    let out = run(&["--org", &a.id.to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("of 0 organization(s)") && stdout.contains("1 already under way"),
        "{stdout}"
    );
    let queued: Vec<(Uuid, Value)> = app
        .db
        .admin()
        .await
        .query(
            "select org_id, args from jobs where kind = 'reindex_vectors' and state = 'available'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(queued.len(), 2);
    assert!(
        queued
            .iter()
            .all(|(_, args)| args["after"].is_null() && args["batch"] == 256)
    );
    // An unknown organization is an error, not a silent no-op.
    let out = run(&["--org", &Uuid::new_v4().to_string()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no organization"));
}

/// Re-indexes 20,000 tickets of one organization with the built-in embedder into the real Qdrant at
/// `QDRANT_URL` and prints the throughput (first run: all embedded; second: all skipped).
#[tokio::test]
#[ignore = "benchmark: QDRANT_URL=… cargo test --release --test it -- --ignored --nocapture bench_"]
async fn bench_reindex_20000_tickets_with_the_builtin_embedder() {
    let Some(url) = qdrant_url_or_skip("ai::bench_reindex_20000_tickets_with_the_builtin_embedder")
    else {
        return;
    };
    const N: i64 = 20_000;
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "rx-bench").await;
    let workspace: Uuid = org.workspace.parse().unwrap();
    app.db
        .admin()
        .await
        .execute(
            "insert into tickets (org_id, number, workspace_id, title, description)
             select $1, 0, $2,
                    (array['Refund', 'Login fails', 'Invoice VAT', 'Crash on export'])[1 + (g % 4)::int]
                        || ' #' || g,
                    'Customer ' || g || ' reports: ' || repeat('the page shows an error and ', 1 + (g % 5)::int)
               from generate_series(1, $3::bigint) g",
            &[&org.id, &workspace, &N],
        )
        .await
        .unwrap();
    let ai = builtin_qdrant_ai(
        &url,
        &format!("deskgraph_bench_{}", Uuid::new_v4().simple()),
    )
    .await;
    let w = workers_of(&app, &ai);
    for label in ["first run (all embedded)", "second run (all skipped)"] {
        let started = std::time::Instant::now();
        let totals = reindex_all(&app, deskgraph::ai::reindex::DEFAULT_BATCH).await[&org.id];
        let secs = started.elapsed().as_secs_f64();
        println!(
            "reindex {label}: {} tickets ({} embedded, {} skipped) in {secs:.2} s = {:.0} tickets/s",
            totals.seen,
            totals.embedded,
            totals.skipped,
            totals.seen as f64 / secs
        );
    }
    w.shutdown(Duration::from_secs(2)).await;
}

/// `similarTickets` latency (through the API, debug or release as built) with Qdrant up, paused (slow:
/// the search timeout decides) and killed (connection refused), 20 calls each, printed as p50/p99.
#[tokio::test]
#[ignore = "benchmark: cargo test --release --test it -- --ignored --nocapture bench_"]
async fn bench_similar_tickets_latency_during_a_qdrant_outage() {
    let test = "ai::bench_similar_tickets_latency_during_a_qdrant_outage";
    let Some(mut server) = QdrantServer::start_or_skip(test).await else {
        return;
    };
    let ai = qdrant_ai(&server).await;
    let app = TestApp::spawn_with_ai(server_config(), ai.clone()).await;
    let a = org_fixture(&app, "bench-out-a").await;
    let b = org_fixture(&app, "bench-out-b").await;
    let w = workers(&app, fast_workers(2, 3));
    let (a_refund, _b_refund, open_id) = refund_tickets(&app, &a, &b).await;
    for id in [&a_refund, &open_id] {
        wait_for_status(&app, &a, id, "DONE").await;
    }
    let measure = async |label: &str, expected: &str| {
        let mut took = Vec::new();
        for _ in 0..20 {
            let (sources, _, t) = similar(&app, &a, &open_id, &["RESOLVED"]).await;
            assert_eq!(sources, vec![expected.to_owned()], "{label}");
            took.push(t);
        }
        took.sort();
        println!(
            "similarTickets, Qdrant {label}: p50={:?} p99={:?}",
            took[took.len() / 2],
            took[took.len() - 1]
        );
    };
    measure("up", "VECTOR").await;
    server.signal("STOP");
    measure("paused (slow)", "FULL_TEXT").await;
    server.signal("CONT");
    server.kill();
    measure("killed", "FULL_TEXT").await;
    w.shutdown(Duration::from_secs(2)).await;
}

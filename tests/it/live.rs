//! Live subscriptions over websockets: both subprotocols, ticket events and their filters, tenant
//! isolation and row level security on delivery, credentials and their loss, the LISTEN connection's
//! recovery, slow consumers, limits, several instances on one database, and graceful shutdown.
//!
//! Every test subscribes first, waits until the server counts the subscription
//! (`deskgraph_live_subscriptions`), then changes data over HTTP (or the socket) and awaits the
//! messages it expects; waits fail after a timeout instead of hanging.

use std::time::Duration;

use deskgraph::ai::{Ai, AiConfig};
use deskgraph::config::{LiveConfig, ServerConfig};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{
    Caller, OrgFixture, TEST_SECRET, TestApp, ok_at, org_fixture, send_raw, server_config,
};
use crate::fake_openai::{FakeOpenAi, Reply};
use crate::queue::{fast_workers, wait_until};
use crate::ws_client::{Incoming, Protocol, WAIT, WsClient, init_payload};

/// Every field of an event (no description: the fixture's tickets are small anyway).
const EVENTS: &str = "subscription($f: TicketEventFilter) {
    ticketEvents(filter: $f) {
        kind occurredAt
        ticket { id title status workspace { id } }
        comment { id body internal }
    } }";

const CREATE: &str = "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }";
const UPDATE: &str =
    "mutation($id: ID!, $i: UpdateTicketInput!) { updateTicket(id: $id, input: $i) { id title } }";
const COMMENT: &str = "mutation($i: AddCommentInput!) { addComment(input: $i) { id } }";

fn cfg_with(change: impl FnOnce(&mut LiveConfig)) -> ServerConfig {
    let mut cfg = server_config();
    change(&mut cfg.live);
    cfg
}

async fn create_ticket(app: &TestApp, caller: &Caller, workspace: &str, title: &str) -> String {
    app.ok(
        caller,
        CREATE,
        json!({"i": {"workspaceId": workspace, "title": title, "description": "live test"}}),
    )
    .await["createTicket"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn update_ticket(app: &TestApp, caller: &Caller, id: &str, input: Value) {
    app.ok(caller, UPDATE, json!({"id": id, "i": input})).await;
}

async fn add_comment(
    app: &TestApp,
    caller: &Caller,
    ticket: &str,
    body: &str,
    internal: bool,
) -> String {
    app.ok(
        caller,
        COMMENT,
        json!({"i": {"ticketId": ticket, "body": body, "internal": internal}}),
    )
    .await["addComment"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn create_workspace(app: &TestApp, admin: &Caller, name: &str) -> String {
    app.ok(
        admin,
        "mutation($i: CreateWorkspaceInput!) { createWorkspace(input: $i) { id } }",
        json!({"i": {"name": name}}),
    )
    .await["createWorkspace"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn metrics_text(base: &str) -> String {
    let raw = send_raw(reqwest::Client::new().get(format!("{base}/metrics"))).await;
    assert_eq!(raw.status, 200, "{}", raw.text);
    raw.text
}

/// The value of one series (`name` or `name{labels}`, exactly as printed) in a metrics text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| {
            v.split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("{series}: not a number: {v}"))
        })
}

/// Waits until `series` (0 while absent) at `base` is one `accept` takes.
async fn wait_metric(base: &str, series: &str, what: &str, accept: impl Fn(f64) -> bool) {
    wait_until(what, WAIT, || async {
        accept(metric(&metrics_text(base).await, series).unwrap_or(0.0))
    })
    .await;
}

/// Waits until the instance at `base` counts at least `n` live subscriptions (so events committed
/// from now on reach them).
async fn wait_subscriptions(base: &str, n: f64) {
    let what = format!("{n} live subscriptions on {base}");
    wait_metric(base, "deskgraph_live_subscriptions", &what, |v| v >= n).await;
}

fn id_of(event: &Value) -> &str {
    event["ticket"]["id"].as_str().unwrap_or_default()
}

fn is(kind: &'static str, ticket: &str) -> impl Fn(&Value) -> bool {
    let ticket = ticket.to_owned();
    move |e: &Value| e["kind"] == kind && id_of(e) == ticket
}

/// A caller for `org`'s agent whose token expires in `ttl_secs`.
fn short_lived_agent(org: &OrgFixture, ttl_secs: u64) -> Caller {
    let subject = &org.agent.subject;
    let token = deskgraph::identity::auth::mint_token(
        TEST_SECRET,
        subject,
        Some(&format!("{subject}@people.example")),
        Some(subject),
        None,
        ttl_secs,
    )
    .unwrap();
    Caller {
        bearer: Some(token),
        ..org.agent.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Protocols
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn graphql_transport_ws_runs_subscriptions_queries_and_mutations() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let mut ws = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.agent).await;
    ws.ping_pong().await;

    // A query over the socket: one result, then complete.
    let q = ws
        .run(
            "q",
            "query($id: ID!) { ticket(id: $id) { id title } viewer { role } }",
            json!({"id": org.ticket}),
        )
        .await;
    assert!(q.get("errors").is_none(), "{q}");
    assert_eq!(q["data"]["ticket"]["title"], "acme: printer on fire", "{q}");
    assert_eq!(q["data"]["viewer"]["role"], "AGENT", "{q}");

    ws.subscribe("s", EVENTS, json!({})).await;
    wait_subscriptions(&app.base, 1.0).await;
    let id = create_ticket(&app, &org.agent, &org.workspace, "Printer jammed").await;
    let (created, _) = ws.wait_event("s", "CREATED", is("CREATED", &id)).await;
    assert_eq!(created["ticket"]["title"], "Printer jammed");
    assert_eq!(created["ticket"]["workspace"]["id"], org.workspace.as_str());
    assert!(created["comment"].is_null(), "{created}");
    let at = created["occurredAt"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("occurredAt {at}: {e}"));

    // A mutation over the same socket, while the subscription runs.
    let m = ws
        .run(
            "m",
            UPDATE,
            json!({"id": id, "i": {"title": "Printer jammed (renamed over the socket)"}}),
        )
        .await;
    assert!(m.get("errors").is_none(), "{m}");
    assert_eq!(
        m["data"]["updateTicket"]["title"],
        "Printer jammed (renamed over the socket)"
    );
    let (updated, _) = ws
        .wait_event("s", "UPDATED after the socket's mutation", |e| {
            is("UPDATED", &id)(e)
                && e["ticket"]["title"] == "Printer jammed (renamed over the socket)"
        })
        .await;
    assert!(updated["comment"].is_null());

    // complete ends the subscription: nothing more arrives for it.
    ws.complete("s").await;
    ws.ping_pong().await;
    wait_metric(
        &app.base,
        "deskgraph_live_subscriptions",
        "the subscription ends",
        |v| v == 0.0,
    )
    .await;
    update_ticket(&app, &org.agent, &id, json!({"title": "after complete"})).await;
    // Anything still in flight from before is allowed; the change after complete is not.
    ws.take_pending();
    ws.expect_silence(Duration::from_secs(1)).await;
    assert!(
        !ws.log.iter().any(|t| t.contains("after complete")),
        "an event arrived after complete"
    );
}

#[tokio::test]
async fn legacy_graphql_ws_runs_subscriptions_queries_and_mutations() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let mut ws = WsClient::connect_as(&app.base, Protocol::Legacy, &org.agent).await;

    let q = ws
        .run(
            "q",
            "query($id: ID!) { ticket(id: $id) { id title } }",
            json!({"id": org.ticket}),
        )
        .await;
    assert!(q.get("errors").is_none(), "{q}");
    assert_eq!(q["data"]["ticket"]["title"], "acme: printer on fire", "{q}");

    ws.subscribe("s", EVENTS, json!({})).await;
    wait_subscriptions(&app.base, 1.0).await;
    let id = create_ticket(&app, &org.agent, &org.workspace, "Legacy printer").await;
    let (created, _) = ws.wait_event("s", "CREATED", is("CREATED", &id)).await;
    assert_eq!(created["ticket"]["title"], "Legacy printer");

    let m = ws
        .run("m", UPDATE, json!({"id": id, "i": {"status": "PENDING"}}))
        .await;
    assert!(m.get("errors").is_none(), "{m}");
    let (updated, _) = ws
        .wait_event("s", "UPDATED after the socket's mutation", |e| {
            is("UPDATED", &id)(e) && e["ticket"]["status"] == "PENDING"
        })
        .await;
    assert_eq!(updated["ticket"]["title"], "Legacy printer");

    ws.complete("s").await;
    wait_metric(
        &app.base,
        "deskgraph_live_subscriptions",
        "the subscription stops",
        |v| v == 0.0,
    )
    .await;

    // connection_terminate ends the connection.
    ws.send_json(json!({"type": "connection_terminate"})).await;
    let closed = ws.drain_until_closed(WAIT).await;
    eprintln!("after connection_terminate: {closed:?}");
    wait_metric(
        &app.base,
        "deskgraph_ws_connections",
        "the socket is gone",
        |v| v == 0.0,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn created_updated_and_commented_events_reach_a_subscriber() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let mut ws = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.agent).await;
    ws.subscribe("s", EVENTS, json!({})).await;
    wait_subscriptions(&app.base, 1.0).await;

    let id = create_ticket(&app, &org.admin, &org.workspace, "Cannot log in").await;
    // Nothing else changed in the organization: the first event is this one.
    let created = ws.next_event("s").await;
    assert!(is("CREATED", &id)(&created), "{created}");
    assert_eq!(created["ticket"]["title"], "Cannot log in");
    assert_eq!(created["ticket"]["status"], "OPEN");

    // Two quick updates of one ticket may become one event; the last state must arrive.
    update_ticket(
        &app,
        &org.agent,
        &id,
        json!({"title": "Cannot log in (2FA)"}),
    )
    .await;
    update_ticket(
        &app,
        &org.agent,
        &id,
        json!({"title": "Cannot log in (2FA, SMS)", "status": "PENDING"}),
    )
    .await;
    let (updated, before) = ws
        .wait_event("s", "UPDATED with the final state", |e| {
            is("UPDATED", &id)(e)
                && e["ticket"]["title"] == "Cannot log in (2FA, SMS)"
                && e["ticket"]["status"] == "PENDING"
        })
        .await;
    assert!(updated["comment"].is_null());
    for e in &before {
        assert!(is("UPDATED", &id)(e), "unexpected event {e}");
    }

    let comment = add_comment(
        &app,
        &org.agent,
        &id,
        "Have you tried turning it off?",
        false,
    )
    .await;
    let (commented, before) = ws.wait_event("s", "COMMENTED", is("COMMENTED", &id)).await;
    for e in &before {
        assert!(is("UPDATED", &id)(e), "unexpected event {e}");
    }
    assert_eq!(commented["comment"]["id"], comment.as_str());
    assert_eq!(
        commented["comment"]["body"],
        "Have you tried turning it off?"
    );
    assert_eq!(commented["comment"]["internal"], false);
    assert_eq!(commented["ticket"]["title"], "Cannot log in (2FA, SMS)");
}

#[tokio::test]
async fn analyzed_events_show_the_finished_analysis() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let mut ws = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.agent).await;
    ws.subscribe(
        "s",
        "subscription { ticketEvents(filter: {kinds: [ANALYZED]}) {
            kind ticket { id priority analysis { status priority provider } } comment { id } } }",
        json!({}),
    )
    .await;
    wait_subscriptions(&app.base, 1.0).await;

    let id = app
        .ok(
            &org.agent,
            "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id analysis { status } } }",
            json!({"i": {"workspaceId": org.workspace, "title": "Production is down",
                         "description": "Every page returns a 500 error since this morning. This is unacceptable!"}}),
        )
        .await["createTicket"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let workers =
        deskgraph::app::start_workers(&app.state(), &app.db.db_config(), &fast_workers(1, 3))
            .unwrap()
            .unwrap();
    let (analyzed, before) = ws
        .wait_event_within(
            "s",
            "ANALYZED",
            Duration::from_secs(30),
            is("ANALYZED", &id),
        )
        .await;
    workers.shutdown(Duration::from_secs(2)).await;
    assert_eq!(
        analyzed["ticket"]["analysis"]["status"], "DONE",
        "{analyzed}"
    );
    assert_eq!(analyzed["ticket"]["analysis"]["provider"], "builtin");
    assert!(analyzed["comment"].is_null());
    // Only ANALYZED events pass the filter (the analysis also updates the ticket's priority).
    for e in before {
        assert_eq!(e["kind"], "ANALYZED", "{e}");
        assert_eq!(e["ticket"]["analysis"]["status"], "DONE", "{e}");
    }
}

#[tokio::test]
async fn filters_select_by_workspace_ticket_and_kind() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let ws1 = org.workspace.clone();
    let ws2 = create_workspace(&app, &org.admin, "Billing").await;
    // Tickets made before anyone subscribes.
    let t_ws1 = create_ticket(&app, &org.agent, &ws1, "In support").await;
    let t_ws2 = create_ticket(&app, &org.agent, &ws2, "In billing").await;

    let mut ws = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.agent).await;
    ws.subscribe("ws", EVENTS, json!({"f": {"workspaceId": ws1}}))
        .await;
    ws.subscribe("t", EVENTS, json!({"f": {"ticketId": org.ticket}}))
        .await;
    ws.subscribe("k", EVENTS, json!({"f": {"kinds": ["COMMENTED"]}}))
        .await;
    ws.subscribe(
        "wk",
        EVENTS,
        json!({"f": {"workspaceId": ws2, "kinds": ["CREATED", "UPDATED"]}}),
    )
    .await;
    wait_subscriptions(&app.base, 4.0).await;

    // Phase 1: one change per ticket (so no two can be merged).
    add_comment(&app, &org.agent, &t_ws2, "billing comment", false).await; // COMMENTED in ws2
    update_ticket(
        &app,
        &org.agent,
        &t_ws1,
        json!({"title": "In support, edited"}),
    )
    .await; // UPDATED in ws1
    update_ticket(&app, &org.agent, &org.ticket, json!({"status": "PENDING"})).await; // UPDATED of org.ticket (ws1)
    let t_new = create_ticket(&app, &org.agent, &ws2, "New in billing").await; // CREATED in ws2

    type Check = fn(&Value, &Ctx) -> bool;
    struct Ctx {
        ws1: String,
        ws2: String,
        ticket: String,
    }
    let ctx = Ctx {
        ws1: ws1.clone(),
        ws2: ws2.clone(),
        ticket: org.ticket.clone(),
    };
    let filters: [(&str, Check); 4] = [
        ("ws", |e, c| {
            e["ticket"]["workspace"]["id"] == c.ws1.as_str()
        }),
        ("t", |e, c| id_of(e) == c.ticket),
        ("k", |e, _| e["kind"] == "COMMENTED"),
        ("wk", |e, c| {
            e["ticket"]["workspace"]["id"] == c.ws2.as_str()
                && (e["kind"] == "CREATED" || e["kind"] == "UPDATED")
        }),
    ];
    let expected: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "ws",
            vec![
                ("UPDATED", t_ws1.as_str()),
                ("UPDATED", org.ticket.as_str()),
            ],
        ),
        ("t", vec![("UPDATED", org.ticket.as_str())]),
        ("k", vec![("COMMENTED", t_ws2.as_str())]),
        ("wk", vec![("CREATED", t_new.as_str())]),
    ];
    let mut seen: std::collections::HashMap<&str, Vec<Value>> = Default::default();
    for (sub, wanted) in &expected {
        for (kind, ticket) in wanted {
            let (event, before) = ws
                .wait_event(sub, &format!("{kind} of {ticket} on {sub}"), |e| {
                    e["kind"] == *kind && id_of(e) == *ticket
                })
                .await;
            let list = seen.entry(sub).or_default();
            list.extend(before);
            list.push(event);
        }
    }

    // Phase 2: a comment on org.ticket (ws1), which all but "wk" want; after it, nothing else.
    add_comment(&app, &org.agent, &org.ticket, "barrier", false).await;
    for sub in ["ws", "t", "k"] {
        let (event, before) = ws
            .wait_event(
                sub,
                &format!("the barrier on {sub}"),
                is("COMMENTED", &org.ticket),
            )
            .await;
        let list = seen.entry(sub).or_default();
        list.extend(before);
        list.push(event);
    }
    ws.expect_silence(Duration::from_secs(1)).await;

    for (sub, check) in filters {
        for e in seen.get(sub).into_iter().flatten() {
            assert!(
                check(e, &ctx),
                "subscription {sub} got an event its filter excludes: {e}"
            );
        }
    }
    // "wk" got exactly its CREATED (the billing comment and the ws1 changes are excluded).
    assert_eq!(seen["wk"].len(), 1, "{:#?}", seen["wk"]);
}

#[tokio::test]
async fn a_mutation_on_one_instance_reaches_a_subscriber_on_another() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let cfg = server_config();
    let other = app.spawn_instance(&cfg).await;
    let base_b = format!("http://{}", other.addr);

    let mut on_a = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.agent).await;
    let mut on_b = WsClient::connect_as(&base_b, Protocol::Legacy, &org.viewer).await;
    on_a.subscribe("s", EVENTS, json!({})).await;
    on_b.subscribe("s", EVENTS, json!({})).await;
    wait_subscriptions(&app.base, 1.0).await;
    wait_subscriptions(&base_b, 1.0).await;

    // Each instance LISTENs on its own connection.
    let admin = app.db.admin().await;
    wait_until("two LISTEN connections", WAIT, || async {
        let n: i64 = admin
            .query_one(
                "select count(*) from pg_stat_activity
                  where application_name = 'deskgraph-live' and datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        n == 2
    })
    .await;

    // Written through A: both hear it.
    let id = create_ticket(&app, &org.agent, &org.workspace, "Written on A").await;
    let (on_b_created, _) = on_b
        .wait_event("s", "CREATED on B", is("CREATED", &id))
        .await;
    assert_eq!(on_b_created["ticket"]["title"], "Written on A");
    on_a.wait_event("s", "CREATED on A", is("CREATED", &id))
        .await;

    // Written through B: A hears it.
    ok_at(
        &base_b,
        &org.agent,
        UPDATE,
        json!({"id": id, "i": {"title": "Edited on B"}}),
    )
    .await;
    on_a.wait_event("s", "UPDATED on A", |e| {
        is("UPDATED", &id)(e) && e["ticket"]["title"] == "Edited on B"
    })
    .await;
    on_b.wait_event("s", "UPDATED on B", |e| {
        is("UPDATED", &id)(e) && e["ticket"]["title"] == "Edited on B"
    })
    .await;
    other.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Isolation and row level security
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn another_organization_never_hears_of_changes_even_when_its_filter_names_them() {
    let app = TestApp::spawn().await;
    let a = org_fixture(&app, "acme").await;
    let b = org_fixture(&app, "globex").await;

    let mut on_a = WsClient::connect_as(&app.base, Protocol::TransportWs, &a.agent).await;
    on_a.subscribe("all", EVENTS, json!({})).await;
    let mut on_b = WsClient::connect_as(&app.base, Protocol::TransportWs, &b.owner).await;
    on_b.subscribe("all", EVENTS, json!({})).await;
    on_b.subscribe("ws", EVENTS, json!({"f": {"workspaceId": a.workspace}}))
        .await;
    on_b.subscribe("t", EVENTS, json!({"f": {"ticketId": a.ticket}}))
        .await;
    on_b.subscribe(
        "mix",
        EVENTS,
        json!({"f": {"workspaceId": a.workspace, "ticketId": a.ticket, "kinds": ["CREATED", "UPDATED", "COMMENTED"]}}),
    )
    .await;
    let mut legacy_b = WsClient::connect_as(&app.base, Protocol::Legacy, &b.agent).await;
    legacy_b
        .subscribe("t", EVENTS, json!({"f": {"ticketId": a.ticket}}))
        .await;

    // Filters naming A's objects may be refused outright; what is not refused must be running
    // before A writes.
    let mut refused = 0.0;
    let deadline = tokio::time::Instant::now() + WAIT;
    let want = 6.0;
    loop {
        let running = metric(
            &metrics_text(&app.base).await,
            "deskgraph_live_subscriptions",
        )
        .unwrap_or(0.0);
        if running >= want - refused {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{running} subscriptions running, {refused} refused, of {want}"
        );
        for client in [&mut on_b, &mut legacy_b] {
            if let Some(Incoming::Json(m)) =
                client.try_next_message(Duration::from_millis(100)).await
            {
                assert_ne!(m["id"], "all", "{m}");
                let errors = m["type"] == "error"
                    || (matches!(m["type"].as_str(), Some("next" | "data"))
                        && m["payload"]["errors"].is_array());
                assert!(errors || m["type"] == "complete", "B got {m}");
                if m["type"] != "complete" {
                    eprintln!("refused: {m}");
                    refused += 1.0;
                }
            }
        }
    }

    // A writes: a new ticket, an edit and a comment; A hears each (one at a time, so none merge).
    let new = create_ticket(&app, &a.agent, &a.workspace, "acme secret launch").await;
    on_a.wait_event("all", "A's CREATED", is("CREATED", &new))
        .await;
    update_ticket(
        &app,
        &a.agent,
        &a.ticket,
        json!({"title": "acme secret renamed"}),
    )
    .await;
    on_a.wait_event("all", "A's UPDATED", |e| {
        is("UPDATED", &a.ticket)(e) && e["ticket"]["title"] == "acme secret renamed"
    })
    .await;
    add_comment(&app, &a.agent, &a.ticket, "acme secret comment", false).await;
    on_a.wait_event("all", "A's COMMENTED", is("COMMENTED", &a.ticket))
        .await;

    // B writes after A; when B hears its own change, A's were long re-read.
    let mine = create_ticket(&app, &b.agent, &b.workspace, "globex own ticket").await;
    let (own, before) = on_b
        .wait_event("all", "B's own CREATED", is("CREATED", &mine))
        .await;
    assert!(before.is_empty(), "B heard {before:#?}");
    assert_eq!(own["ticket"]["title"], "globex own ticket");
    // Nothing else, on any of B's subscriptions.
    for m in on_b.take_pending() {
        assert!(
            m["type"] == "error" || m["type"] == "complete" || m["payload"]["errors"].is_array(),
            "B got {m}"
        );
    }
    on_b.expect_silence(Duration::from_secs(1)).await;
    for m in legacy_b.take_pending() {
        assert!(
            m["type"] == "error" || m["type"] == "complete" || m["payload"]["errors"].is_array(),
            "B (legacy) got {m}"
        );
    }
    legacy_b.expect_silence(Duration::from_secs(1)).await;
    for frame in on_b.log.iter().chain(legacy_b.log.iter()) {
        for secret in ["acme", "printer on fire", &new] {
            assert!(!frame.contains(secret), "B received {secret}: {frame}");
        }
    }
}

#[tokio::test]
async fn internal_notes_reach_agents_but_viewers_get_the_event_without_the_comment() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let mut viewer = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.viewer).await;
    let mut agent = WsClient::connect_as(&app.base, Protocol::Legacy, &org.agent).await;
    let mut key = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.agent_key).await;
    for c in [&mut viewer, &mut agent, &mut key] {
        c.subscribe("s", EVENTS, json!({})).await;
    }
    wait_subscriptions(&app.base, 3.0).await;

    let note = "internal: customer is on the naughty list";
    let note_id = add_comment(&app, &org.agent, &org.ticket, note, true).await;
    for (who, c) in [("agent", &mut agent), ("agent key", &mut key)] {
        let (e, _) = c
            .wait_event(
                "s",
                &format!("{who}'s COMMENTED"),
                is("COMMENTED", &org.ticket),
            )
            .await;
        assert_eq!(e["comment"]["id"], note_id.as_str(), "{who}: {e}");
        assert_eq!(e["comment"]["body"], note, "{who}: {e}");
        assert_eq!(e["comment"]["internal"], true, "{who}: {e}");
    }
    let (e, _) = viewer
        .wait_event("s", "viewer's COMMENTED", is("COMMENTED", &org.ticket))
        .await;
    assert!(
        e["comment"].is_null(),
        "a viewer received an internal note: {e}"
    );
    assert_eq!(e["ticket"]["title"], "acme: printer on fire");

    // A public reply is the viewer's to read.
    let reply_id = add_comment(&app, &org.agent, &org.ticket, "We are on it", false).await;
    let (e, _) = viewer
        .wait_event("s", "viewer's public COMMENTED", |e| {
            is("COMMENTED", &org.ticket)(e) && !e["comment"].is_null()
        })
        .await;
    assert_eq!(e["comment"]["id"], reply_id.as_str());
    assert_eq!(e["comment"]["body"], "We are on it");
    assert!(
        !viewer.log.iter().any(|t| t.contains("naughty list")),
        "the viewer's socket carried the internal note"
    );

    // Queries hide internal notes from viewers (and analyst keys) as well.
    let comments = "query($id: ID!) { ticket(id: $id) { commentCount comments { edges { node { id body internal } } } } }";
    let as_viewer = app
        .ok(&org.viewer, comments, json!({"id": org.ticket}))
        .await;
    let nodes = as_viewer["ticket"]["comments"]["edges"].as_array().unwrap();
    assert!(
        nodes.iter().all(|n| n["node"]["internal"] == false),
        "{as_viewer}"
    );
    assert!(nodes.iter().any(|n| n["node"]["id"] == reply_id.as_str()));
    assert_eq!(as_viewer["ticket"]["commentCount"], 1, "{as_viewer}");
    let as_agent = app
        .ok(&org.agent, comments, json!({"id": org.ticket}))
        .await;
    assert_eq!(as_agent["ticket"]["commentCount"], 3, "{as_agent}");
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_socket_is_closed_with_4401_when_its_token_expires() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let caller = short_lived_agent(&org, 5);
    let mut ws = WsClient::connect_as(&app.base, Protocol::TransportWs, &caller).await;
    ws.subscribe("s", EVENTS, json!({"f": {"kinds": ["RESYNC"]}}))
        .await;
    // Closed at exp (within a few seconds), long before the 30 s verification leeway runs out.
    let (code, reason) = ws.expect_close_within(Duration::from_secs(20)).await;
    assert_eq!(code, 4401, "closed with {code} {reason:?}");

    let mut legacy =
        WsClient::connect_as(&app.base, Protocol::Legacy, &short_lived_agent(&org, 3)).await;
    legacy
        .subscribe("s", EVENTS, json!({"f": {"kinds": ["RESYNC"]}}))
        .await;
    let (code, reason) = legacy.expect_close_within(Duration::from_secs(20)).await;
    assert_eq!(code, 4401, "legacy: closed with {code} {reason:?}");
}

/// Changes `ticket` (and files a new one) after access was lost, waiting until `witness` heard each
/// change (so the live path has re-read them all).
async fn changes_heard_by(app: &TestApp, org: &OrgFixture, witness: &mut WsClient, ticket: &str) {
    update_ticket(app, &org.owner, ticket, json!({"title": "After the loss"})).await;
    witness
        .wait_event("s", "the witness's UPDATED", |e| {
            is("UPDATED", ticket)(e) && e["ticket"]["title"] == "After the loss"
        })
        .await;
    add_comment(app, &org.owner, ticket, "after the loss", false).await;
    witness
        .wait_event("s", "the witness's COMMENTED", is("COMMENTED", ticket))
        .await;
    let new = create_ticket(app, &org.owner, &org.workspace, "Filed after the loss").await;
    witness
        .wait_event("s", "the witness's CREATED", is("CREATED", &new))
        .await;
}

#[tokio::test]
async fn a_removed_member_hears_nothing_more_and_is_closed_with_4403() {
    let app = TestApp::spawn_with(cfg_with(|l| l.live_access_check_secs = 1)).await;
    let org = org_fixture(&app, "acme").await;
    let mut ws = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.agent).await;
    ws.subscribe("s", EVENTS, json!({})).await;
    let mut witness = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.owner).await;
    witness.subscribe("s", EVENTS, json!({})).await;
    wait_subscriptions(&app.base, 2.0).await;
    let id = create_ticket(&app, &org.admin, &org.workspace, "Before the removal").await;
    ws.wait_event("s", "CREATED before the removal", is("CREATED", &id))
        .await;
    witness
        .wait_event("s", "the witness's CREATED", is("CREATED", &id))
        .await;
    ws.expect_silence(Duration::from_millis(200)).await;

    app.ok(
        &org.owner,
        "mutation($u: ID!) { removeMember(userId: $u) }",
        json!({"u": org.agent.user_id.unwrap()}),
    )
    .await;
    cut_off(&app, &org, &mut ws, &mut witness, &id).await;
}

/// After a caller lost access: from the loss's commit on, `ws` hears nothing (the owner's `witness`
/// hears every change made since) and is then closed with 4403 (`expect_close` fails on any event
/// before the close).
async fn cut_off(
    app: &TestApp,
    org: &OrgFixture,
    ws: &mut WsClient,
    witness: &mut WsClient,
    id: &str,
) {
    changes_heard_by(app, org, witness, id).await;
    let (code, reason) = ws.expect_close().await;
    assert_eq!(code, 4403, "closed with {code} {reason:?}");
    assert!(
        !ws.log
            .iter()
            .any(|t| t.to_lowercase().contains("after the loss")),
        "{:#?}",
        ws.log
    );
}

#[tokio::test]
async fn a_revoked_api_key_hears_nothing_more_and_is_closed_with_4403() {
    let app = TestApp::spawn_with(cfg_with(|l| l.live_access_check_secs = 1)).await;
    let org = org_fixture(&app, "acme").await;
    let mut ws = WsClient::connect_as(&app.base, Protocol::Legacy, &org.agent_key).await;
    ws.subscribe("s", EVENTS, json!({})).await;
    let mut witness = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.owner).await;
    witness.subscribe("s", EVENTS, json!({})).await;
    wait_subscriptions(&app.base, 2.0).await;
    let id = create_ticket(&app, &org.agent, &org.workspace, "Before the revocation").await;
    ws.wait_event("s", "CREATED before the revocation", is("CREATED", &id))
        .await;
    witness
        .wait_event("s", "the witness's CREATED", is("CREATED", &id))
        .await;

    app.ok(
        &org.admin,
        "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
        json!({"id": org.agent_key_id}),
    )
    .await;
    cut_off(&app, &org, &mut ws, &mut witness, &id).await;
}

#[tokio::test]
async fn a_failed_analysis_is_announced_as_analyzed() {
    let fake = FakeOpenAi::start().await;
    fake.default_reply(Reply::Status(500, None));
    let ai = Ai::from_config(
        &AiConfig {
            openai_api_key: "sk-test".into(),
            openai_base_url: fake.url.clone(),
            llm_model: "fake-model".into(),
            llm_timeout_secs: 5,
            llm_max_retries: 0,
            prices: "fake-model=5:100".into(),
            ..AiConfig::default()
        },
        1,
    )
    .await
    .unwrap();
    let app = TestApp::spawn_with_ai(server_config(), ai).await;
    let org = org_fixture(&app, "acme").await;
    let mut ws = WsClient::connect_as(&app.base, Protocol::Legacy, &org.agent).await;
    ws.subscribe(
        "s",
        "subscription($t: ID!) { ticketEvents(filter: {ticketId: $t, kinds: [ANALYZED]}) {
            kind ticket { id analysis { status creditsCharged } } } }",
        json!({"t": org.ticket}),
    )
    .await;
    wait_subscriptions(&app.base, 1.0).await;
    let workers =
        deskgraph::app::start_workers(&app.state(), &app.db.db_config(), &fast_workers(1, 1))
            .unwrap()
            .unwrap();
    let event = ws.next_event("s").await;
    workers.shutdown(Duration::from_secs(2)).await;
    assert_eq!(event["kind"], "ANALYZED", "{event}");
    assert_eq!(id_of(&event), org.ticket);
    assert_eq!(event["ticket"]["analysis"]["status"], "FAILED", "{event}");
    assert_eq!(
        event["ticket"]["analysis"]["creditsCharged"], "0",
        "{event}"
    );
}

#[tokio::test]
async fn refused_credentials_in_connection_init_close_the_socket_with_4403() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let other = org_fixture(&app, "globex").await;
    let stranger = Caller::user("stranger").in_org(org.id);
    app.user_id(&stranger).await;
    // A key revoked before it is used.
    let created = app
        .ok(
            &org.admin,
            "mutation { createApiKey(input: {name: \"old\", role: \"AGENT\"}) { secret apiKey { id } } }",
            json!({}),
        )
        .await;
    let revoked_secret = created["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        &org.admin,
        "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
        json!({"id": created["createApiKey"]["apiKey"]["id"]}),
    )
    .await;
    let wrong_secret = deskgraph::identity::auth::mint_token(
        "not-the-secret",
        &org.agent.subject,
        Some(&format!("{}@people.example", org.agent.subject)),
        None,
        None,
        3600,
    )
    .unwrap();
    let org_id = org.id.to_string();
    let cases: Vec<(&str, Value)> = vec![
        (
            "garbage token",
            json!({"authorization": "Bearer not-a-token", "x-org-id": org_id}),
        ),
        (
            "token signed with another secret",
            json!({"authorization": format!("Bearer {wrong_secret}"), "x-org-id": org_id}),
        ),
        ("a user who is not a member", init_payload(&stranger)),
        (
            "a member of another organization",
            init_payload(&other.agent.clone().in_org(org.id)),
        ),
        (
            "an organization that does not exist",
            init_payload(&org.agent.clone().in_org(Uuid::new_v4())),
        ),
        (
            "a revoked key",
            json!({"authorization": format!("Bearer {revoked_secret}")}),
        ),
        (
            "another organization's key",
            json!({"authorization": format!("Bearer {}", other.agent_key.bearer.as_ref().unwrap()), "x-org-id": org_id}),
        ),
    ];
    for protocol in [Protocol::TransportWs, Protocol::Legacy] {
        for (case, payload) in &cases {
            let mut ws = WsClient::connect(&app.base, protocol).await;
            ws.init(payload.clone()).await;
            let (code, reason) = ws.expect_close().await;
            assert_eq!(
                code, 4403,
                "{protocol:?}, {case}: closed with {code} {reason:?}"
            );
            assert!(
                !ws.log.iter().any(|t| t.contains("connection_ack")),
                "{protocol:?}, {case}: acknowledged"
            );
        }
    }
}

#[tokio::test]
async fn init_payload_keys_are_case_insensitive_and_upgrade_headers_are_a_fallback() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let role = "{ viewer { role organization { id } } }";

    // Capitalized keys.
    let mut ws = WsClient::connect(&app.base, Protocol::TransportWs).await;
    ws.init(json!({
        "Authorization": format!("Bearer {}", org.agent.bearer.as_ref().unwrap()),
        "X-Org-Id": org.id.to_string(),
    }))
    .await;
    ws.expect_ack().await;
    let r = ws.run("r", role, json!({})).await;
    assert_eq!(r["data"]["viewer"]["role"], "AGENT", "{r}");
    assert_eq!(
        r["data"]["viewer"]["organization"]["id"],
        org.id.to_string()
    );

    // Nothing in the payload: the upgrade request's headers count.
    let headers = [
        (
            "authorization",
            format!("Bearer {}", org.viewer.bearer.as_ref().unwrap()),
        ),
        ("x-org-id", org.id.to_string()),
    ];
    for protocol in [Protocol::TransportWs, Protocol::Legacy] {
        let mut ws = WsClient::connect_with(&app.base, protocol, &headers, None).await;
        ws.init(json!({})).await;
        ws.expect_ack().await;
        let r = ws.run("r", role, json!({})).await;
        assert_eq!(r["data"]["viewer"]["role"], "VIEWER", "{protocol:?}: {r}");
    }

    // Both: the payload wins.
    let mut ws = WsClient::connect_with(&app.base, Protocol::TransportWs, &headers, None).await;
    ws.init_ok(&org.agent).await;
    let r = ws.run("r", role, json!({})).await;
    assert_eq!(r["data"]["viewer"]["role"], "AGENT", "{r}");
}

#[tokio::test]
async fn protocol_violations_close_the_socket_with_their_codes() {
    let app = TestApp::spawn_with(cfg_with(|l| l.ws_init_timeout_secs = 1)).await;
    let org = org_fixture(&app, "acme").await;

    // No connection_init: 4408.
    for protocol in [Protocol::TransportWs, Protocol::Legacy] {
        let mut ws = WsClient::connect(&app.base, protocol).await;
        let (code, reason) = ws.expect_close().await;
        assert_eq!(code, 4408, "{protocol:?}: closed with {code} {reason:?}");
    }

    // subscribe before connection_ack: 4401.
    let mut ws = WsClient::connect(&app.base, Protocol::TransportWs).await;
    ws.subscribe("s", EVENTS, json!({})).await;
    let (code, reason) = ws.expect_close().await;
    assert_eq!(code, 4401, "closed with {code} {reason:?}");

    // An id that is already running: 4409.
    let mut ws = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.agent).await;
    ws.subscribe("dup", EVENTS, json!({})).await;
    ws.subscribe("dup", EVENTS, json!({})).await;
    let (code, reason) = ws.expect_close().await;
    assert_eq!(code, 4409, "closed with {code} {reason:?}");
}

// ---------------------------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_lost_listen_connection_sends_resync_then_events_flow_again() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let mut ws = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.agent).await;
    ws.subscribe("s", EVENTS, json!({})).await;
    wait_subscriptions(&app.base, 1.0).await;
    update_ticket(
        &app,
        &org.agent,
        &org.ticket,
        json!({"title": "before the loss"}),
    )
    .await;
    ws.wait_event("s", "UPDATED before the loss", |e| {
        is("UPDATED", &org.ticket)(e) && e["ticket"]["title"] == "before the loss"
    })
    .await;

    let admin = app.db.admin().await;
    let killed = admin
        .query(
            "select pg_terminate_backend(pid) from pg_stat_activity
              where application_name = 'deskgraph-live' and datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 1, "one LISTEN connection per instance");
    assert!(killed[0].get::<_, bool>(0));

    let (resync, before) = ws
        .wait_event_within("s", "RESYNC", Duration::from_secs(30), |e| {
            e["kind"] == "RESYNC"
        })
        .await;
    assert!(resync["ticket"].is_null(), "{resync}");
    assert!(resync["comment"].is_null(), "{resync}");
    assert!(before.is_empty(), "{before:#?}");

    update_ticket(
        &app,
        &org.agent,
        &org.ticket,
        json!({"title": "after the loss"}),
    )
    .await;
    ws.wait_event("s", "UPDATED after the resync", |e| {
        is("UPDATED", &org.ticket)(e) && e["ticket"]["title"] == "after the loss"
    })
    .await;
}

#[tokio::test]
async fn a_client_that_does_not_read_is_disconnected_with_1013() {
    let app = TestApp::spawn_with(cfg_with(|l| l.ws_queue = 2)).await;
    let org = org_fixture(&app, "acme").await;
    let admin = app.db.admin().await;
    let workspace: Uuid = org.workspace.parse().unwrap();
    admin
        .execute(
            "insert into tickets (org_id, workspace_id, title)
             select $1, $2, 'bulk ' || g from generate_series(1, 200) g",
            &[&org.id, &workspace],
        )
        .await
        .unwrap();

    // A reader that keeps up, on one ticket, and one that never reads, on everything.
    let mut reader = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.agent).await;
    reader
        .subscribe(
            "s",
            "subscription($t: ID!) { ticketEvents(filter: {ticketId: $t}) { kind ticket { id title } } }",
            json!({"t": org.ticket}),
        )
        .await;
    let mut slow = WsClient::connect_with(&app.base, Protocol::TransportWs, &[], Some(4096)).await;
    slow.init_ok(&org.agent).await;
    slow.subscribe(
        "s",
        "subscription { ticketEvents { kind ticket { id description } } }",
        json!({}),
    )
    .await;
    wait_subscriptions(&app.base, 2.0).await;

    let slow_closed = "deskgraph_ws_closed_total{reason=\"slow_consumer\"}";
    let mut rounds = 0;
    loop {
        // ~19 kB of fresh text in each of ~200 tickets: a few MB of events per round.
        admin
            .execute(
                "update tickets set description = repeat(md5(random()::text), 600) where org_id = $1",
                &[&org.id],
            )
            .await
            .unwrap();
        rounds += 1;
        // The reader keeps reading (its own ticket's events only).
        while let Some(m) = reader.try_next_message(Duration::from_millis(50)).await {
            assert!(
                matches!(m, Incoming::Json(_)),
                "the reader was closed: {m:?}"
            );
        }
        let m = metrics_text(&app.base).await;
        if metric(&m, slow_closed).unwrap_or(0.0) >= 1.0 {
            break;
        }
        assert!(
            rounds < 60,
            "no slow consumer was dropped after {rounds} rounds of updates:\n{}",
            m.lines()
                .filter(|l| l.starts_with("deskgraph_ws") || l.starts_with("deskgraph_live"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("slow consumer dropped after {rounds} rounds");
    match slow.drain_until_closed(Duration::from_secs(60)).await {
        Some((code, reason)) => assert_eq!(code, 1013, "closed with {code} {reason:?}"),
        None => eprintln!("the slow client's stream ended without a close frame"),
    }

    // The reader is still served.
    reader.take_pending();
    update_ticket(
        &app,
        &org.agent,
        &org.ticket,
        json!({"title": "still served"}),
    )
    .await;
    reader
        .wait_event("s", "the reader's UPDATED", |e| {
            e["kind"] == "UPDATED" && e["ticket"]["title"] == "still served"
        })
        .await;
    let m = metrics_text(&app.base).await;
    assert_eq!(
        metric(&m, slow_closed),
        Some(1.0),
        "only the slow client was dropped"
    );
}

#[tokio::test]
async fn limits_on_operations_per_socket_and_sockets_per_organization() {
    let app = TestApp::spawn_with(cfg_with(|l| {
        l.ws_max_subscriptions = 2;
        l.ws_max_connections_per_org = 2;
    }))
    .await;
    let org = org_fixture(&app, "acme").await;
    let other = org_fixture(&app, "globex").await;

    // Operations per socket.
    let mut ws = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.agent).await;
    ws.subscribe("a", EVENTS, json!({})).await;
    ws.subscribe("b", EVENTS, json!({})).await;
    wait_subscriptions(&app.base, 2.0).await;
    ws.subscribe("c", EVENTS, json!({})).await;
    let errors = ws.expect_error("c").await;
    let code = errors[0]["extensions"]["code"].as_str().unwrap_or_default();
    assert!(!code.is_empty(), "no extensions.code: {errors:?}");
    eprintln!("one operation too many: {code}");
    // The socket stays open and its two subscriptions keep running.
    let id = create_ticket(&app, &org.agent, &org.workspace, "Limits").await;
    ws.wait_event("a", "CREATED on a", is("CREATED", &id)).await;
    ws.wait_event("b", "CREATED on b", is("CREATED", &id)).await;
    // A finished one frees its slot.
    ws.complete("a").await;
    ws.ping_pong().await;
    wait_metric(&app.base, "deskgraph_live_subscriptions", "a stops", |v| {
        v == 1.0
    })
    .await;
    ws.subscribe("d", EVENTS, json!({})).await;
    wait_subscriptions(&app.base, 2.0).await;
    let id = create_ticket(&app, &org.agent, &org.workspace, "Limits again").await;
    ws.wait_event("d", "CREATED on d", is("CREATED", &id)).await;

    // Sockets per organization (per instance): a third is closed with 1013 ...
    let second = WsClient::connect_as(&app.base, Protocol::Legacy, &org.viewer).await;
    let mut third = WsClient::connect(&app.base, Protocol::TransportWs).await;
    third.init(init_payload(&org.admin)).await;
    let (code, reason) = third.expect_close().await;
    assert_eq!(code, 1013, "closed with {code} {reason:?}");
    // ... while another organization's are welcome ...
    let mut others = WsClient::connect_as(&app.base, Protocol::TransportWs, &other.agent).await;
    others.ping_pong().await;
    // ... and the first socket still works.
    ws.ping_pong().await;
    // Once one closes, there is room again.
    second.close().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut again = WsClient::connect(&app.base, Protocol::TransportWs).await;
        again.init(init_payload(&org.admin)).await;
        match again.next_message(WAIT).await {
            Incoming::Json(m) if m["type"] == "connection_ack" => break,
            Incoming::Close(1013, _) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no room after a socket closed"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn graceful_shutdown_closes_sockets_with_1001() {
    let mut app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let mut modern = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.agent).await;
    let mut legacy = WsClient::connect_as(&app.base, Protocol::Legacy, &org.viewer).await;
    modern.subscribe("s", EVENTS, json!({})).await;
    legacy.subscribe("s", EVENTS, json!({})).await;
    wait_subscriptions(&app.base, 2.0).await;

    let server = app.server.take().unwrap();
    let stopping = tokio::spawn(server.stop());
    let (code, reason) = modern.expect_close().await;
    assert_eq!(
        code, 1001,
        "graphql-transport-ws closed with {code} {reason:?}"
    );
    let (code, reason) = legacy.expect_close().await;
    assert_eq!(code, 1001, "graphql-ws closed with {code} {reason:?}");
    tokio::time::timeout(Duration::from_secs(30), stopping)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn no_websocket_payload_leaks_internals() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let other = org_fixture(&app, "globex").await;
    let long_title = "x".repeat(300);
    let bad: Vec<(&str, &str, Value)> = vec![
        ("syntax", "subscription { ticketEvents( }", json!({})),
        (
            "unknown field",
            "subscription { ticketEvents { nope } }",
            json!({}),
        ),
        (
            "bad id",
            EVENTS,
            json!({"f": {"workspaceId": "not-a-uuid"}}),
        ),
        (
            "bad ticket id",
            EVENTS,
            json!({"f": {"ticketId": "'; drop table tickets; --"}}),
        ),
        ("bad kind", EVENTS, json!({"f": {"kinds": ["EXPLODED"]}})),
        ("wrong variable type", EVENTS, json!({"f": 42})),
        (
            "unknown ticket",
            UPDATE,
            json!({"id": Uuid::new_v4(), "i": {"title": "ghost"}}),
        ),
        (
            "title too long",
            CREATE,
            json!({"i": {"workspaceId": org.workspace, "title": long_title}}),
        ),
        (
            "another organization's workspace",
            CREATE,
            json!({"i": {"workspaceId": other.workspace, "title": "trojan"}}),
        ),
        (
            "another organization's ticket",
            COMMENT,
            json!({"i": {"ticketId": other.ticket, "body": "hello"}}),
        ),
        (
            "empty comment",
            COMMENT,
            json!({"i": {"ticketId": org.ticket, "body": ""}}),
        ),
    ];
    for protocol in [Protocol::TransportWs, Protocol::Legacy] {
        let mut ws = WsClient::connect_as(&app.base, protocol, &org.agent).await;
        for (i, (case, query, variables)) in bad.iter().enumerate() {
            let id = format!("bad{i}");
            ws.subscribe(&id, query, variables.clone()).await;
            let m = ws.next_for(&id, WAIT).await;
            let errors = match m["type"].as_str() {
                Some("error") => m["payload"].clone(),
                Some("next" | "data") => {
                    ws.expect_complete(&id).await;
                    m["payload"]["errors"].clone()
                }
                _ => panic!("{protocol:?}, {case}: {m}"),
            };
            assert!(
                errors.is_array() || errors.is_object(),
                "{protocol:?}, {case}: no errors in {m}"
            );
            let errors = if errors.is_array() {
                errors
            } else {
                json!([errors])
            };
            assert!(
                !errors.as_array().unwrap().is_empty(),
                "{protocol:?}, {case}: {m}"
            );
        }
        // Nothing of the other organization, and the socket survived it all.
        for frame in &ws.log {
            assert!(!frame.contains("globex"), "{frame}");
        }
        let q = ws.run("alive", "{ viewer { role } }", json!({})).await;
        assert_eq!(q["data"]["viewer"]["role"], "AGENT", "{q}");

        // Messages that are not the protocol's: the server may close, but says nothing internal.
        let mut ws = WsClient::connect_as(&app.base, protocol, &org.agent).await;
        ws.send_text("{ this is not json").await;
        if let Some(Incoming::Close(code, reason)) =
            ws.try_next_message(Duration::from_secs(2)).await
        {
            eprintln!("{protocol:?}: invalid JSON closed with {code} {reason:?}");
        }
        let mut ws = WsClient::connect_as(&app.base, protocol, &org.agent).await;
        ws.send_json(json!({"type": "bogus", "id": "x", "payload": {"query": "select 1"}}))
            .await;
        if let Some(Incoming::Close(code, reason)) =
            ws.try_next_message(Duration::from_secs(2)).await
        {
            eprintln!("{protocol:?}: an unknown message closed with {code} {reason:?}");
        }
    }
}

#[tokio::test]
async fn metrics_count_sockets_subscriptions_and_events_without_tenant_data() {
    let app = TestApp::spawn_with(cfg_with(|l| l.ws_init_timeout_secs = 1)).await;
    let org = org_fixture(&app, "acme").await;
    let mut ws = WsClient::connect_as(&app.base, Protocol::TransportWs, &org.viewer).await;
    ws.subscribe("s", EVENTS, json!({})).await;
    wait_subscriptions(&app.base, 1.0).await;
    let id = create_ticket(&app, &org.agent, &org.workspace, "Metered").await;
    ws.wait_event("s", "CREATED", is("CREATED", &id)).await;
    add_comment(&app, &org.agent, &id, "metered internal note", true).await;
    ws.wait_event("s", "COMMENTED", is("COMMENTED", &id)).await;
    // A socket that never says hello is closed (and counted).
    let mut idle = WsClient::connect(&app.base, Protocol::TransportWs).await;
    let (code, _) = idle.expect_close().await;
    assert_eq!(code, 4408);

    let text = metrics_text(&app.base).await;
    let value =
        |series: &str| metric(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert!(value("deskgraph_ws_connections") >= 1.0);
    assert_eq!(value("deskgraph_live_subscriptions"), 1.0);
    assert!(value("deskgraph_live_events_received_total") >= 2.0);
    assert!(value("deskgraph_live_events_delivered_total") >= 2.0);
    assert!(value("deskgraph_live_events_dropped_total") >= 0.0);
    assert!(value("deskgraph_live_reread_duration_seconds_count") >= 1.0);
    assert!(value("deskgraph_live_reread_sql_statements_count") >= 1.0);
    assert!(
        text.lines()
            .any(|l| l.starts_with("deskgraph_ws_closed_total{reason=")),
        "no close reasons in\n{text}"
    );
    for secret in [
        org.id.to_string(),
        org.ticket.clone(),
        id.clone(),
        "acme".into(),
    ] {
        assert!(!text.contains(&secret), "metrics leak {secret}");
    }
}

#[tokio::test]
async fn idle_sockets_receive_keepalives_and_stay_open() {
    let app = TestApp::spawn_with(cfg_with(|l| l.ws_keepalive_secs = 1)).await;
    let org = org_fixture(&app, "acme").await;
    for (protocol, keepalive) in [
        (Protocol::Legacy, r#""ka""#),
        (Protocol::TransportWs, r#""ping""#),
    ] {
        let mut ws = WsClient::connect_as(&app.base, protocol, &org.agent).await;
        ws.subscribe("s", EVENTS, json!({"f": {"kinds": ["RESYNC"]}}))
            .await;
        let mut waited = 0;
        while !ws.log.iter().any(|t| t.contains(keepalive)) {
            assert!(waited < 10, "{protocol:?}: no {keepalive} in {:?}", ws.log);
            // Keep-alives are skipped (and pings answered) by the client; nothing else may come.
            ws.expect_silence(Duration::from_secs(1)).await;
            waited += 1;
        }
        let q = ws.run("q", "{ viewer { role } }", json!({})).await;
        assert_eq!(q["data"]["viewer"]["role"], "AGENT", "{protocol:?}: {q}");
    }
}

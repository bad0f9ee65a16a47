//! The audit trail: written by triggers in the same transaction as every change, hash-chained per
//! organization, append-only for everyone, readable by owners and admins only, and verifiable.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::common::{Caller, TestApp, error_code, org_fixture, send_raw};

const LOG: &str = "query($f: AuditLogFilter, $a: String, $n: Int) {
    auditLog(first: $n, after: $a, filter: $f) {
        totalCount pageInfo { hasNextPage endCursor }
        edges { node { seq occurredAt action table rowId before after requestId clientRequestId
                       actor { kind userId apiKeyId role } } }
    } }";
const VERIFY: &str = "{ verifyAuditChain { ok checkedEntries firstBrokenSeq headSeq headHash } }";

/// Every entry matching `filter`, newest first, following the cursors.
async fn all_entries(app: &TestApp, caller: &Caller, filter: Value) -> Vec<Value> {
    let mut out = vec![];
    let mut after = Value::Null;
    loop {
        let page = app
            .ok(caller, LOG, json!({"f": filter, "a": after, "n": 100}))
            .await;
        let log = &page["auditLog"];
        out.extend(
            log["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if log["pageInfo"]["hasNextPage"] != true {
            return out;
        }
        after = log["pageInfo"]["endCursor"].clone();
    }
}

#[tokio::test]
async fn every_write_is_recorded_with_its_actor_and_request_without_secrets() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    // An agent changes a ticket, with a request id of their own and a title no encoding may bend.
    let req = org.agent.apply(
        app.http
            .post(format!("{}/graphql", app.base))
            .header("x-request-id", "req-audit-1")
            .json(&json!({
                "query": "mutation($id: ID!) { updateTicket(id: $id, input: {title: \"Ünïcödé | ✓ \\\"quoted\\\"\", priority: HIGH}) { id } }",
                "variables": {"id": org.ticket}
            })),
    );
    let sent = send_raw(req).await;
    assert!(sent.json().get("errors").is_none());
    let server_id = sent.header("x-request-id").unwrap().to_owned();
    // An invitation (its token hash must stay out of the trail).
    app.ok(
        &org.admin,
        "mutation { inviteMember(input: {email: \"new@example.com\", role: AGENT}) { token } }",
        json!({}),
    )
    .await;
    // And the agent API key comments (an API-key actor).
    app.ok(
        &org.agent_key,
        "mutation($t: ID!) { addComment(input: {ticketId: $t, body: \"from a key\"}) { id } }",
        json!({"t": org.ticket}),
    )
    .await;

    let entries = all_entries(&app, &org.admin, Value::Null).await;
    // Gapless, newest first.
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let n = seqs.len() as i64;
    assert_eq!(seqs, (1..=n).rev().collect::<Vec<_>>());
    // Every kind of table the fixture wrote is there.
    let tables: std::collections::BTreeSet<&str> = entries
        .iter()
        .map(|e| e["table"].as_str().unwrap())
        .collect();
    for table in [
        "organizations",
        "memberships",
        "workspaces",
        "ticket_counters",
        "tickets",
        "ticket_comments",
        "api_keys",
        "invitations",
        "credit_balances",
        "credit_ledger",
    ] {
        assert!(tables.contains(table), "no entry for {table}: {tables:?}");
    }
    // The agent's update: who, which request (the server's id; the client's apart), before and after.
    let update = entries
        .iter()
        .find(|e| e["requestId"] == server_id.as_str())
        .expect("the update is recorded with the server's request id");
    assert_eq!(update["clientRequestId"], "req-audit-1");
    assert_eq!(update["action"], "UPDATE");
    assert_eq!(update["table"], "tickets");
    assert_eq!(update["rowId"], org.ticket.as_str());
    assert_eq!(
        update["actor"],
        json!({"kind": "USER", "userId": org.agent.user_id.unwrap(), "apiKeyId": null, "role": "agent"})
    );
    assert_eq!(update["before"]["priority"], "medium");
    assert_eq!(update["after"]["priority"], "high");
    assert_eq!(update["after"]["title"], "Ünïcödé | ✓ \"quoted\"");
    // The derived search vector is left out.
    assert!(update["after"].get("search").is_none());
    let by_key = entries
        .iter()
        .find(|e| e["table"] == "ticket_comments" && e["after"]["body"] == "from a key")
        .unwrap();
    assert_eq!(by_key["actor"]["kind"], "API_KEY");
    assert_eq!(by_key["actor"]["apiKeyId"], org.agent_key_id.as_str());
    // Secrets never reach the trail.
    for e in &entries {
        let text = format!("{} {}", e["before"], e["after"]);
        for secret in ["secret_hash", "token_hash"] {
            assert!(!text.contains(secret), "{secret} in {e}");
        }
    }
    // The chain the triggers wrote verifies in Rust: SQL and Rust agree on the encoding.
    let verdict = app.ok(&org.owner, VERIFY, json!({})).await;
    assert_eq!(verdict["verifyAuditChain"]["ok"], true, "{verdict}");
    assert_eq!(verdict["verifyAuditChain"]["checkedEntries"], n);
    assert_eq!(verdict["verifyAuditChain"]["headSeq"], n);
    assert_eq!(
        verdict["verifyAuditChain"]["headHash"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
}

#[tokio::test]
async fn a_rolled_back_operation_leaves_no_audit_entries() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let before = app.ok(&org.owner, VERIFY, json!({})).await;
    // The first field succeeds, the second fails: the operation rolls back as a whole.
    let (_, body) = app
        .post(
            &org.admin,
            "mutation {
                a: createWorkspace(input: {name: \"Temporary\"}) { id }
                b: createWorkspace(input: {name: \"Temporary\"}) { id }
            }",
            json!({}),
        )
        .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("BAD_USER_INPUT"),
        "{body}"
    );
    let after = app.ok(&org.owner, VERIFY, json!({})).await;
    assert_eq!(before, after);
    let total = app
        .ok(&org.owner, "{ auditLog { totalCount } }", json!({}))
        .await;
    assert_eq!(
        total["auditLog"]["totalCount"],
        before["verifyAuditChain"]["checkedEntries"]
    );
}

#[tokio::test]
async fn the_trail_is_append_only_for_the_api_and_even_for_its_owner() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let pool = app.db.runtime_pool(2);
    for sql in [
        "update audit_log set action = 'DELETE'",
        "delete from audit_log",
        "truncate audit_log",
        "insert into audit_log (org_id, seq, occurred_at, action, table_name, prev_hash, hash)
         values (app.current_org_id(), 999, now(), 'INSERT', 'tickets', '\\x', '\\x')",
        "update audit_heads set last_seq = 1",
        "delete from audit_heads",
    ] {
        let tx = crate::common::trusted_tx(
            &pool,
            Some(org.id),
            Some(deskgraph::authz::Role::Owner),
            deskgraph::db::Access::ReadWrite,
        )
        .await;
        let err = tx.execute(sql, &[]).await.unwrap_err();
        assert_eq!(
            crate::common::sql_state(&err),
            Some(tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err:?}"
        );
        tx.rollback().await.unwrap();
    }
    let admin = app.db.admin().await;
    for sql in [
        "update audit_log set action = 'DELETE'",
        "delete from audit_log",
        "truncate audit_log",
        "delete from audit_heads",
        "truncate audit_heads",
    ] {
        let err = admin.batch_execute(sql).await.unwrap_err();
        assert!(
            err.as_db_error().unwrap().message().contains("append-only"),
            "{sql}: {err:?}"
        );
    }
    let verdict = app.ok(&org.owner, VERIFY, json!({})).await;
    assert_eq!(verdict["verifyAuditChain"]["ok"], true);
}

#[tokio::test]
async fn verify_names_a_tampered_or_missing_entry() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let intact = app.ok(&org.owner, VERIFY, json!({})).await["verifyAuditChain"].clone();
    let n = intact["checkedEntries"].as_i64().unwrap();
    assert!(intact["ok"] == true && n > 10, "{intact}");
    let admin = app.db.admin().await;
    // A superuser bypasses the triggers and rewrites entry 7's `after`.
    admin
        .batch_execute("set session_replication_role = replica")
        .await
        .unwrap();
    let changed = admin
        .execute(
            "update audit_log set after = jsonb_set(coalesce(after, '{}'), '{forged}', 'true')
              where org_id = $1 and seq = 7",
            &[&org.id],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let verdict = app.ok(&org.owner, VERIFY, json!({})).await;
    assert_eq!(
        verdict["verifyAuditChain"],
        json!({"ok": false, "checkedEntries": n, "firstBrokenSeq": 7,
               "headSeq": n, "headHash": intact["headHash"]})
    );

    // Put it back and remove entry 3 instead: the gap is named.
    admin
        .execute(
            "update audit_log set after = after - 'forged' where org_id = $1 and seq = 7",
            &[&org.id],
        )
        .await
        .unwrap();
    assert_eq!(
        app.ok(&org.owner, VERIFY, json!({})).await["verifyAuditChain"]["ok"],
        true
    );
    admin
        .execute(
            "delete from audit_log where org_id = $1 and seq = 3",
            &[&org.id],
        )
        .await
        .unwrap();
    let verdict = app.ok(&org.admin, VERIFY, json!({})).await;
    assert_eq!(verdict["verifyAuditChain"]["ok"], false);
    assert_eq!(verdict["verifyAuditChain"]["firstBrokenSeq"], 3);
    assert_eq!(verdict["verifyAuditChain"]["checkedEntries"], n - 1);
}

#[tokio::test]
async fn filters_and_pages_find_what_they_ask_for() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let started = chrono::Utc::now();
    for n in 0..3 {
        app.ok(
            &org.agent,
            "mutation($id: ID!, $t: String!) { updateTicket(id: $id, input: {title: $t}) { id } }",
            json!({"id": org.ticket, "t": format!("Renamed {n}")}),
        )
        .await;
    }
    let updates = all_entries(
        &app,
        &org.owner,
        json!({"table": "tickets", "action": "UPDATE", "actorId": org.agent.user_id.unwrap(),
               "since": started.to_rfc3339()}),
    )
    .await;
    let titles: Vec<&str> = updates
        .iter()
        .map(|e| e["after"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, vec!["Renamed 2", "Renamed 1", "Renamed 0"]);
    // `until` before anything happened finds nothing; an unknown table finds nothing.
    for filter in [
        json!({"until": "2000-01-01T00:00:00Z"}),
        json!({"table": "no_such_table"}),
    ] {
        let page = app.ok(&org.owner, LOG, json!({"f": filter, "n": 5})).await;
        assert_eq!(page["auditLog"]["totalCount"], 0, "{filter}");
    }
    // Small pages cover everything once.
    let total = app
        .ok(&org.owner, "{ auditLog { totalCount } }", json!({}))
        .await["auditLog"]["totalCount"]
        .as_i64()
        .unwrap();
    let mut seen = vec![];
    let mut after = Value::Null;
    loop {
        let page = app.ok(&org.owner, LOG, json!({"a": after, "n": 7})).await;
        let log = &page["auditLog"];
        seen.extend(
            log["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["seq"].as_i64().unwrap()),
        );
        if log["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = log["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, (1..=total).rev().collect::<Vec<_>>());
    // Bad filters are named and touch nothing.
    for (vars, field) in [
        (json!({"f": {"table": "tickets; drop table x"}}), "table"),
        (json!({"f": {"actorId": "nope"}}), "actorId"),
        (
            json!({"f": {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}}),
            "until",
        ),
        (json!({"a": "not-a-cursor"}), "after"),
        (json!({"n": 101}), "first"),
    ] {
        let (_, body) = app.post(&org.owner, LOG, vars.clone()).await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("BAD_USER_INPUT"),
            "{vars}"
        );
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{vars}");
    }
}

#[tokio::test]
async fn only_owners_and_admins_read_the_trail_and_only_their_own() {
    let app = TestApp::spawn().await;
    let a = org_fixture(&app, "acme").await;
    let b = org_fixture(&app, "globex").await;
    for caller in [&a.agent, &a.viewer, &a.agent_key, &a.analyst_key] {
        for query in ["{ auditLog { totalCount } }", VERIFY] {
            assert_eq!(
                app.err(caller, query, json!({})).await,
                "FORBIDDEN",
                "{caller:?} {query}"
            );
        }
    }
    // In SQL, an agent's transaction reads no entries at all (the database repeats the rule).
    let pool = app.db.runtime_pool(2);
    let tx = crate::common::trusted_tx(
        &pool,
        Some(a.id),
        Some(deskgraph::authz::Role::Agent),
        deskgraph::db::Access::ReadOnly,
    )
    .await;
    let n: i64 = tx
        .query_one("select count(*) from audit_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    tx.rollback().await.unwrap();
    // B's owner sees B's trail only: none of A's row ids, and B's own sequence from 1.
    let b_entries = all_entries(&app, &b.owner, Value::Null).await;
    let text = serde_json::to_string(&b_entries).unwrap();
    for id in [a.id.to_string(), a.ticket.clone(), a.workspace.clone()] {
        assert!(!text.contains(&id), "B's trail mentions A's {id}");
    }
    assert_eq!(b_entries.last().unwrap()["seq"], 1);
}

#[tokio::test]
async fn concurrent_mixed_writes_of_one_organization_neither_deadlock_nor_break_the_chain() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    // Each operation writes several kinds of row that are locked per organization: a ticket (its
    // counter), an update, credits (the balance), an invitation (the seat count).
    let calls = (0..12).map(|i| {
        app.post(
            &org.admin,
            "mutation($w: ID!, $t: ID!, $i: GrantCreditsInput!, $e: String!) {
                u: updateTicket(id: $t, input: {status: PENDING}) { id }
                c: createTicket(input: {workspaceId: $w, title: \"Concurrent\"}) { id }
                g: grantCredits(input: $i) { balance }
                v: inviteMember(input: {email: $e, role: VIEWER}) { token }
            }",
            json!({"w": org.workspace, "t": org.ticket,
                   "i": {"amount": 1, "idempotencyKey": format!("mixed-{i}")},
                   "e": format!("mixed-{i}@example.com")}),
        )
    });
    for (status, body) in join_all(calls).await {
        assert_eq!(status, 200);
        assert!(body.get("errors").is_none(), "{body}");
    }
    let verdict = app.ok(&org.owner, VERIFY, json!({})).await;
    assert_eq!(verdict["verifyAuditChain"]["ok"], true, "{verdict}");
    let numbers = app
        .ok(
            &org.owner,
            "{ tickets(first: 100) { totalCount edges { node { number } } } }",
            json!({}),
        )
        .await;
    let mut numbers: Vec<i64> = numbers["tickets"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["number"].as_i64().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=13).collect::<Vec<_>>());
}

#[tokio::test]
async fn accepting_invitations_across_organizations_at_once_does_not_deadlock() {
    let app = TestApp::spawn().await;
    let a = org_fixture(&app, "acme").await;
    let b = org_fixture(&app, "globex").await;
    let invite =
        "mutation($e: String!) { inviteMember(input: {email: $e, role: VIEWER}) { token } }";
    let accept =
        "mutation($t: String!) { acceptInvitation(token: $t) { role organization { id } } }";
    for round in 0..5 {
        // A's agent joins B while acting in A, and B's agent joins A while acting in B, at once (each
        // invited at the address they sign in with).
        let to_b = app
            .ok(&b.admin, invite, json!({"e": "acme-agent@people.example"}))
            .await["inviteMember"]["token"]
            .clone();
        let to_a = app
            .ok(
                &a.admin,
                invite,
                json!({"e": "globex-agent@people.example"}),
            )
            .await["inviteMember"]["token"]
            .clone();
        let (x, y) = tokio::join!(
            app.post(&a.agent, accept, json!({"t": to_b})),
            app.post(&b.agent, accept, json!({"t": to_a}))
        );
        for (_, body) in [x, y] {
            // The first round joins; later ones find the membership there already.
            assert!(body.get("errors").is_none(), "round {round}: {body}");
        }
    }
    for org in [&a, &b] {
        let verdict = app.ok(&org.owner, VERIFY, json!({})).await;
        assert_eq!(verdict["verifyAuditChain"]["ok"], true, "{verdict}");
    }
    // The acceptance is recorded in the invited organization, by the user, without a borrowed role.
    let joins = all_entries(
        &app,
        &b.owner,
        json!({"table": "memberships", "action": "INSERT"}),
    )
    .await;
    let join = joins
        .iter()
        .find(|e| e["rowId"] == json!(a.agent.user_id.unwrap().to_string()))
        .expect("the join is in B's trail");
    assert_eq!(join["actor"]["kind"], "USER");
    assert_eq!(join["actor"]["role"], Value::Null);
}

/// Renames the agent's ticket in one HTTP request, sending `client_id` as `x-request-id` when given;
/// returns the server's request id from the response.
async fn rename_ticket(
    app: &TestApp,
    org: &crate::common::OrgFixture,
    title: &str,
    client_id: Option<reqwest::header::HeaderValue>,
) -> String {
    let mut req = app.http.post(format!("{}/graphql", app.base));
    if let Some(id) = client_id {
        req = req.header("x-request-id", id);
    }
    let resp = send_raw(org.agent.apply(req.json(&json!({
        "query": "mutation($id: ID!, $t: String!) { updateTicket(id: $id, input: {title: $t}) { id } }",
        "variables": {"id": org.ticket, "t": title}
    }))))
    .await;
    assert!(resp.json().get("errors").is_none(), "{}", resp.text);
    let id = resp.header("x-request-id").unwrap().to_owned();
    assert_eq!(
        uuid::Uuid::parse_str(&id).unwrap().get_version_num(),
        7,
        "the server's id is a UUIDv7: {id}"
    );
    id
}

fn header(value: &str) -> Option<reqwest::header::HeaderValue> {
    Some(reqwest::header::HeaderValue::from_bytes(value.as_bytes()).unwrap())
}

/// The entries a request wrote (by the server's request id).
fn of_request<'a>(entries: &'a [Value], request_id: &str) -> Vec<&'a Value> {
    entries
        .iter()
        .filter(|e| e["requestId"] == request_id)
        .collect()
}

#[tokio::test]
async fn the_client_request_id_is_recorded_apart_and_never_becomes_the_request_id() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let with_id = rename_ticket(&app, &org, "with the client's id", header("client-abc")).await;
    let without = rename_ticket(&app, &org, "without an id", None).await;
    // A client replaying another request's id cannot make its changes look like that request's.
    let forged = rename_ticket(&app, &org, "forged", header(&with_id)).await;
    let odd: Vec<String> = vec![
        "has spaces".into(),
        "semi;colon".into(),
        "x".repeat(129),
        "café".into(),
    ];
    let mut odd_ids = vec![];
    for (n, value) in odd.iter().enumerate() {
        odd_ids.push(rename_ticket(&app, &org, &format!("odd {n}"), header(value)).await);
    }
    let entries = all_entries(&app, &org.admin, Value::Null).await;

    let first = of_request(&entries, &with_id);
    assert!(
        first
            .iter()
            .any(|e| e["table"] == "tickets" && e["after"]["title"] == "with the client's id"),
        "{first:?}"
    );
    assert_ne!(with_id, "client-abc");
    for e in &first {
        assert_eq!(e["clientRequestId"], "client-abc", "{e}");
    }
    let second = of_request(&entries, &without);
    assert!(!second.is_empty());
    for e in &second {
        assert_eq!(e["clientRequestId"], Value::Null, "{e}");
    }
    // The replayed id is recorded as the client's claim only; the first request's entries are its own.
    let third = of_request(&entries, &forged);
    assert_ne!(forged, with_id);
    assert!(third.iter().any(|e| e["after"]["title"] == "forged"));
    for e in &third {
        assert_eq!(e["clientRequestId"], with_id.as_str(), "{e}");
    }
    assert!(
        first.iter().all(|e| e["after"]["title"] != "forged"),
        "{first:?}"
    );
    // An odd value is dropped: recorded nowhere, neither as the request id nor as the client's.
    for (value, id) in odd.iter().zip(&odd_ids) {
        let written = of_request(&entries, id);
        assert!(!written.is_empty(), "{value:?}");
        for e in &written {
            assert_eq!(e["clientRequestId"], Value::Null, "{value:?}: {e}");
        }
        assert!(
            entries
                .iter()
                .all(|e| e["requestId"] != value.as_str() && e["clientRequestId"] != value.as_str()),
            "{value:?} was recorded"
        );
    }
    // A request id is always the server's (a UUIDv7 for a request, `job:…` for background work).
    for e in &entries {
        if let Some(id) = e["requestId"].as_str() {
            assert!(
                uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7)
                    || id.starts_with("job:"),
                "{e}"
            );
        }
    }
    let verdict = app.ok(&org.owner, VERIFY, json!({})).await;
    assert_eq!(verdict["verifyAuditChain"]["ok"], true, "{verdict}");
    assert_eq!(
        verdict["verifyAuditChain"]["checkedEntries"],
        entries.len() as i64
    );
}

/// The text of `create [or replace] function internal.audit_row()` in a migration, as `create or
/// replace`.
fn audit_row_function(migration: &str) -> String {
    let start = migration
        .find("function internal.audit_row()")
        .and_then(|at| migration[..at].rfind("create "))
        .expect("the migration defines internal.audit_row");
    let len = migration[start..].find("\n$$;").expect("its body ends") + "\n$$;".len();
    migration[start..start + len].replacen("create function", "create or replace function", 1)
}

#[tokio::test]
async fn entries_written_before_v6_still_verify_beside_entries_with_a_client_request_id() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let admin = app.db.admin().await;
    // Entries as V3's trigger wrote them (no client request id, twelve hashed fields) ...
    admin
        .batch_execute(&audit_row_function(include_str!(
            "../../migrations/V3__audit_log.sql"
        )))
        .await
        .unwrap();
    let before = rename_ticket(&app, &org, "before V6", header("client-before")).await;
    // ... then V6's again, with one.
    admin
        .batch_execute(&audit_row_function(include_str!(
            "../../migrations/V6__client_request_id.sql"
        )))
        .await
        .unwrap();
    let after = rename_ticket(&app, &org, "after V6", header("client-after")).await;

    let entries = all_entries(&app, &org.admin, Value::Null).await;
    let old = of_request(&entries, &before);
    let new = of_request(&entries, &after);
    assert!(!old.is_empty() && !new.is_empty());
    assert!(old.iter().all(|e| e["clientRequestId"].is_null()));
    assert!(new.iter().all(|e| e["clientRequestId"] == "client-after"));
    let verdict = app.ok(&org.owner, VERIFY, json!({})).await["verifyAuditChain"].clone();
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["checkedEntries"], entries.len() as i64);

    // The hash covers the client's id: changing it on a new entry, or adding one to an old entry, is
    // named.
    let seq = |e: &Value| e["seq"].as_i64().unwrap();
    let (old_seq, new_seq) = (seq(old[0]), seq(new[0]));
    admin
        .batch_execute("set session_replication_role = replica")
        .await
        .unwrap();
    let set = "update audit_log set client_request_id = $3 where org_id = $1 and seq = $2";
    admin
        .execute(set, &[&org.id, &new_seq, &"client-forged"])
        .await
        .unwrap();
    let verdict = app.ok(&org.owner, VERIFY, json!({})).await["verifyAuditChain"].clone();
    assert_eq!(verdict["ok"], false);
    assert_eq!(verdict["firstBrokenSeq"], new_seq);
    admin
        .execute(set, &[&org.id, &new_seq, &"client-after"])
        .await
        .unwrap();
    assert_eq!(
        app.ok(&org.owner, VERIFY, json!({})).await["verifyAuditChain"]["ok"],
        true
    );
    admin
        .execute(set, &[&org.id, &old_seq, &"client-before"])
        .await
        .unwrap();
    let verdict = app.ok(&org.owner, VERIFY, json!({})).await["verifyAuditChain"].clone();
    assert_eq!(verdict["ok"], false);
    assert_eq!(verdict["firstBrokenSeq"], old_seq);
}

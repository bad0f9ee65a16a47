//! Pool hygiene (DESIGN §2 rules 3 and 5): tenant settings never outlive their transaction, a
//! transaction that does not end cleanly takes its connection with it, and one GraphQL operation is one
//! transaction.

// Helpers here are test code too: a failed unwrap is a failed test with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use deskgraph::authz::Role;
use deskgraph::db::Pool;
use deskgraph::db::{Access, TenantTx};
use serde_json::json;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::common::{TestApp, TestDb, error_code, org_fixture, sql_state, trusted_tx};

const SETTINGS: [&str; 4] = ["app.org_id", "app.user_id", "app.role", "app.api_key_id"];

async fn pid_of(tx: &TenantTx) -> i32 {
    tx.query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// What a connection carries outside any transaction: its pid, the app.* settings (empty or unset),
/// its statement timeout and whether new transactions default to read-only.
async fn plain_state(pool: &Pool) -> (i32, Vec<Option<String>>, String, String) {
    let client = pool.get().await.unwrap();
    let row = client
        .query_one(
            "select pg_backend_pid(),
                    current_setting('app.org_id', true), current_setting('app.user_id', true),
                    current_setting('app.role', true), current_setting('app.api_key_id', true),
                    current_setting('statement_timeout'), current_setting('transaction_read_only')",
            &[],
        )
        .await
        .unwrap();
    let settings = (1..=4).map(|i| row.get::<_, Option<String>>(i)).collect();
    (row.get(0), settings, row.get(5), row.get(6))
}

fn assert_no_context(settings: &[Option<String>]) {
    for (name, value) in SETTINGS.iter().zip(settings) {
        assert!(
            value.as_deref().is_none_or(str::is_empty),
            "{name} outlived its transaction: {value:?}"
        );
    }
}

/// The server's view of a backend: `(state, in a transaction)`, or None once it has gone.
async fn backend(admin: &tokio_postgres::Client, pid: i32) -> Option<(String, bool)> {
    admin
        .query_opt(
            "select coalesce(state, ''), xact_start is not null from pg_stat_activity where pid = $1",
            &[&pid],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

/// Polls until the backend `pid` has ended, for at most ten seconds.
async fn wait_until_gone(admin: &tokio_postgres::Client, pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match backend(admin, pid).await {
            None => return,
            Some(state) if Instant::now() >= deadline => {
                panic!("backend {pid} of a discarded connection is still there: {state:?}")
            }
            Some(_) => tokio::task::yield_now().await,
        }
    }
}

#[tokio::test]
async fn one_pooled_connection_carries_no_tenant_context_from_one_transaction_into_the_next() {
    let db = TestDb::new().await;
    let pool = db.runtime_pool(1);
    let seeded = deskgraph::demo::seed(&pool).await.unwrap();
    let (a, b) = (seeded.orgs["acme"], seeded.orgs["globex"]);
    let admin = db.admin().await;
    let (pid, settings, timeout, read_only) = plain_state(&pool).await;
    assert_no_context(&settings);
    assert_eq!(read_only, "off");

    let tx = trusted_tx(&pool, Some(a), Some(Role::Agent), Access::ReadWrite).await;
    let row = tx
        .query_one(
            "select pg_backend_pid(), current_setting('app.org_id', true), current_setting('app.role', true),
                    (select count(*) from tickets), current_setting('statement_timeout')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i32>(0),
        pid,
        "a pool of one has one connection"
    );
    assert_eq!(row.get::<_, String>(1), a.to_string());
    assert_eq!(row.get::<_, String>(2), "agent");
    assert!(row.get::<_, i64>(3) > 0);
    assert_ne!(
        row.get::<_, String>(4),
        timeout,
        "the operation's timeout is in force"
    );
    tx.execute(
        "update tickets set priority = 'high' where org_id = $1",
        &[&a],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // A finished transaction keeps its connection until it is dropped (the end of the request).
    drop(tx);
    assert_eq!(
        backend(&admin, pid).await,
        Some(("idle".into(), false)),
        "a committed connection waits outside any transaction"
    );

    let tx = trusted_tx(&pool, Some(b), Some(Role::Viewer), Access::ReadOnly).await;
    let row = tx
        .query_one(
            "select pg_backend_pid(), current_setting('app.org_id', true), current_setting('app.role', true),
                    (select count(*) from tickets where org_id = $1), (select count(*) from tickets)",
            &[&a],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i32>(0),
        pid,
        "the same physical connection is reused"
    );
    assert_eq!(row.get::<_, String>(1), b.to_string());
    assert_eq!(row.get::<_, String>(2), "viewer");
    assert_eq!(row.get::<_, i64>(3), 0, "B's transaction sees A's tickets");
    let b_tickets: i64 = admin
        .query_one("select count(*) from tickets where org_id = $1", &[&b])
        .await
        .unwrap()
        .get(0);
    assert_eq!(row.get::<_, i64>(4), b_tickets);
    tx.rollback().await.unwrap();
    drop(tx);

    let (pid_after, settings, timeout_after, read_only) = plain_state(&pool).await;
    assert_eq!(pid_after, pid);
    assert_no_context(&settings);
    assert_eq!(
        timeout_after, timeout,
        "the statement timeout outlived its transaction"
    );
    assert_eq!(read_only, "off", "READ ONLY outlived its transaction");
    assert_eq!(backend(&admin, pid).await, Some(("idle".into(), false)));
    let client = pool.get().await.unwrap();
    let seen: i64 = client
        .query_one("select count(*) from tickets", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 0, "a plain checkout reads tenant rows");
}

#[tokio::test]
async fn a_transaction_dropped_unfinished_takes_its_connection_out_of_the_pool() {
    let db = TestDb::new().await;
    let pool = db.runtime_pool(1);
    let seeded = deskgraph::demo::seed(&pool).await.unwrap();
    let a = seeded.orgs["acme"];
    let admin = db.admin().await;
    let abandoned = |name: &'static str| {
        let admin = &admin;
        async move {
            admin
                .query_one("select count(*) from workspaces where name = $1", &[&name])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };

    // A request that wrote something and then vanished (no COMMIT, no ROLLBACK).
    let tx = trusted_tx(&pool, Some(a), Some(Role::Owner), Access::ReadWrite).await;
    let first = pid_of(&tx).await;
    tx.execute(
        "insert into workspaces (org_id, name) values ($1, 'Abandoned')",
        &[&a],
    )
    .await
    .unwrap();
    drop(tx);
    assert_eq!(
        pool.status().size,
        0,
        "the connection went back to the pool"
    );
    assert_eq!(abandoned("Abandoned").await, 0);
    wait_until_gone(&admin, first).await;

    let (second, settings, _, _) = plain_state(&pool).await;
    assert_ne!(
        second, first,
        "the unfinished transaction's connection was handed out again"
    );
    assert_no_context(&settings);
    assert_eq!(pool.status().size, 1);

    // A clean transaction's connection is reused, by contrast…
    let tx = trusted_tx(&pool, Some(a), Some(Role::Owner), Access::ReadWrite).await;
    assert_eq!(pid_of(&tx).await, second);
    // …but one that failed and was dropped is not.
    let err = tx.query("select 1 / 0", &[]).await.unwrap_err();
    assert_eq!(sql_state(&err), Some(SqlState::DIVISION_BY_ZERO));
    drop(tx);
    assert_eq!(pool.status().size, 0);
    let client = pool.get().await.unwrap();
    let row = client
        .query_one(
            "select pg_backend_pid(), current_setting('app.org_id', true), 1",
            &[],
        )
        .await
        .expect("a fresh connection, not one stuck in an aborted transaction");
    assert_ne!(row.get::<_, i32>(0), second);
    assert!(row.get::<_, Option<String>>(1).is_none_or(|s| s.is_empty()));
    assert_eq!(row.get::<_, i32>(2), 1);
    wait_until_gone(&admin, second).await;
}

#[tokio::test]
async fn a_request_cancelled_mid_transaction_commits_nothing_and_leaves_its_connection_behind() {
    let db = TestDb::new().await;
    let pool = db.runtime_pool(1);
    let seeded = deskgraph::demo::seed(&pool).await.unwrap();
    let a = seeded.orgs["acme"];
    let admin = db.admin().await;

    let (pid_tx, pid_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn({
        let pool = pool.clone();
        async move {
            let tx = trusted_tx(&pool, Some(a), Some(Role::Owner), Access::ReadWrite).await;
            tx.execute(
                "insert into workspaces (org_id, name) values ($1, 'Cancelled')",
                &[&a],
            )
            .await
            .unwrap();
            pid_tx.send(pid_of(&tx).await).unwrap();
            // A slow statement the client stops waiting for (a dropped HTTP request).
            let _ = tx.query("select pg_sleep(30)", &[]).await;
            tx.commit().await.unwrap();
        }
    });
    let pid = pid_rx.await.unwrap();
    task.abort();
    let joined = task.await;
    assert!(joined.is_err_and(|e| e.is_cancelled()));
    assert_eq!(
        pool.status().size,
        0,
        "the cancelled transaction's connection is pooled"
    );
    let count: i64 = admin
        .query_one(
            "select count(*) from workspaces where name = 'Cancelled'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
    let (next, settings, _, _) = plain_state(&pool).await;
    assert_ne!(next, pid);
    assert_no_context(&settings);
    // The server only notices the closed socket once pg_sleep returns; don't keep it waiting.
    admin
        .execute("select pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    wait_until_gone(&admin, pid).await;
}

#[tokio::test]
async fn a_task_that_panics_holding_a_tenant_transaction_commits_nothing_and_its_connection_is_not_reused()
 {
    let db = TestDb::new().await;
    let pool = db.runtime_pool(1);
    let seeded = deskgraph::demo::seed(&pool).await.unwrap();
    let a = seeded.orgs["acme"];
    let admin = db.admin().await;
    let (ws, counter): (Uuid, i64) = admin
        .query_one(
            "select (select id from workspaces where org_id = $1 limit 1),
                    (select last_number from ticket_counters where org_id = $1)",
            &[&a],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();

    let (pid_tx, pid_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn({
        let pool = pool.clone();
        async move {
            let tx = trusted_tx(&pool, Some(a), Some(Role::Agent), Access::ReadWrite).await;
            tx.execute(
                "insert into tickets (org_id, workspace_id, title) values ($1, $2, 'Half-done')",
                &[&a, &ws],
            )
            .await
            .unwrap();
            pid_tx.send(pid_of(&tx).await).unwrap();
            panic!("simulated bug in the middle of an operation");
        }
    });
    let joined = task.await;
    assert!(joined.is_err_and(|e| e.is_panic()));
    let pid = pid_rx.await.unwrap();

    let row = admin
        .query_one(
            "select (select count(*) from tickets where title = 'Half-done'),
                    (select last_number from ticket_counters where org_id = $1)",
            &[&a],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        0,
        "the panicked operation's ticket was committed"
    );
    assert_eq!(row.get::<_, i64>(1), counter, "the ticket counter advanced");
    assert_eq!(pool.status().size, 0);
    let (next, settings, _, _) = plain_state(&pool).await;
    assert_ne!(next, pid, "the panicked task's connection was reused");
    assert_no_context(&settings);
    wait_until_gone(&admin, pid).await;
}

#[tokio::test]
async fn a_mutation_whose_second_field_fails_writes_nothing_at_all() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let admin = app.db.admin().await;
    let state = || {
        let admin = &admin;
        async move {
            let row = admin
                .query_one(
                    "select (select count(*) from tickets where org_id = $1),
                            (select last_number from ticket_counters where org_id = $1),
                            (select count(*) from ticket_comments where org_id = $1)",
                    &[&org.id],
                )
                .await
                .unwrap();
            (
                row.get::<_, i64>(0),
                row.get::<_, i64>(1),
                row.get::<_, i64>(2),
            )
        }
    };
    let before = state().await;

    let (status, body) = app
        .post(
            &org.agent,
            r#"mutation($ws: ID!, $bad: ID!, $t: ID!) {
                a: createTicket(input: {workspaceId: $ws, title: "first of two"}) { id number }
                c: addComment(input: {ticketId: $t, body: "written before the failure"}) { id }
                b: createTicket(input: {workspaceId: $bad, title: "second of two"}) { id }
            }"#,
            json!({"ws": org.workspace, "bad": Uuid::new_v4(), "t": org.ticket}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["b"]), "{body}");
    assert!(error_code(&body).is_some());
    assert_eq!(
        state().await,
        before,
        "a failed operation left writes behind"
    );
    let titles: i64 = admin
        .query_one(
            "select count(*) from tickets where title in ('first of two', 'second of two')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(titles, 0);

    // If the response names the first ticket, it does not exist.
    if let Some(id) = body["data"]["a"]["id"].as_str() {
        let code = app
            .err(
                &org.agent,
                "query($id: ID!) { ticket(id: $id) { id } }",
                json!({"id": id}),
            )
            .await;
        assert_eq!(code, "NOT_FOUND");
    }
    // The rolled-back insert did not use up a ticket number.
    let data = app
        .ok(
            &org.agent,
            "mutation($ws: ID!) { createTicket(input: {workspaceId: $ws, title: \"after\"}) { number } }",
            json!({"ws": org.workspace}),
        )
        .await;
    assert_eq!(data["createTicket"]["number"], json!(before.1 + 1));
}

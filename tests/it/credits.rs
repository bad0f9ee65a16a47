//! Plans, seats and credits: the ledger under concurrency, faults, roles and isolation, through the
//! service API (as the AI pipeline will use it), raw SQL as the runtime role, and GraphQL over HTTP.

use deskgraph::authz::Role;
use deskgraph::billing::allowance;
use deskgraph::billing::repo::{self as credits, HoldState};
use deskgraph::db::Pool;
use deskgraph::db::{Access, Credentials, TenantContext, TenantTx, TxOptions};
use deskgraph::error::AppError;
use futures_util::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{
    Caller, OrgFixture, TestApp, TestDb, big_int, error_code, org_fixture, sql_state, trusted_tx,
};

async fn system_tx(pool: &Pool, org: Uuid) -> TenantTx {
    TenantTx::begin(
        pool,
        &Credentials::Trusted(TenantContext::system(org)),
        TxOptions::new(Access::ReadWrite, 10_000),
    )
    .await
    .unwrap()
}

/// Brings the organization's balance to `target` with an ADJUSTMENT entry (as an owner).
async fn set_balance(pool: &Pool, org: Uuid, target: i64) {
    let tx = trusted_tx(pool, Some(org), Some(Role::Owner), Access::ReadWrite).await;
    // The fixture's ticket holds credits for its (never run) analysis: give them back, so that these
    // tests start with nothing held.
    let open: Vec<Uuid> = tx
        .query(
            "select h.id from credit_ledger h where h.kind = 'HOLD'
                and not exists (select 1 from credit_ledger s where s.hold_id = h.id)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for hold in open {
        credits::release(&tx, hold).await.unwrap();
    }
    let current = credits::balance(&tx).await.unwrap().balance;
    if current != target {
        tx.execute(
            "insert into credit_ledger (org_id, kind, amount, idempotency_key, balance_after, held_after)
             values ($1, 'ADJUSTMENT', $2, $3, 0, 0)",
            &[&org, &(target - current), &format!("test-adjust:{}", Uuid::new_v4())],
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Balance and held as stored, and as the sums of the ledger (as the superuser, who sees it all).
async fn books(db: &TestDb, org: Uuid) -> [i64; 4] {
    let admin = db.admin().await;
    let row = admin
        .query_one(
            "select b.balance, b.held,
                    (select coalesce(sum(amount), 0)::bigint from credit_ledger where org_id = $1),
                    (select coalesce(sum(held_change), 0)::bigint from credit_ledger where org_id = $1)
               from credit_balances b where b.org_id = $1",
            &[&org],
        )
        .await
        .unwrap();
    [row.get(0), row.get(1), row.get(2), row.get(3)]
}

/// Asserts the books balance: stored balance and held equal the ledger's sums.
async fn assert_books(db: &TestDb, org: Uuid) -> (i64, i64) {
    let [balance, held, sum, sum_held] = books(db, org).await;
    assert_eq!(
        (balance, held),
        (sum, sum_held),
        "the ledger does not add up"
    );
    (balance, held)
}

#[tokio::test]
async fn fifty_concurrent_holds_against_ten_credits_succeed_exactly_ten_times() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let pool = app.db.runtime_pool(25);
    set_balance(&pool, org.id, 10).await;

    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let pool = pool.clone();
            let org = org.id;
            tokio::spawn(async move {
                let tx = trusted_tx(&pool, Some(org), Some(Role::Agent), Access::ReadWrite).await;
                let result = credits::hold(&tx, 1, &format!("job-{i}"), Some("test")).await;
                tx.commit().await.unwrap();
                result
            })
        })
        .collect();
    let (mut held, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(hold) => {
                assert_eq!((hold.amount, hold.state), (1, HoldState::Open));
                held += 1;
            }
            Err(AppError::InsufficientCredits { needed, available }) => {
                assert_eq!((needed, available), (1, 0));
                refused += 1;
            }
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!((held, refused), (10, 40));
    assert_eq!(assert_books(&app.db, org.id).await, (0, 10));
    let holds: i64 = app
        .db
        .admin()
        .await
        .query_one(
            "select count(*) from credit_ledger where org_id = $1 and kind = 'HOLD'
                and idempotency_key not like 'hold:analysis:%'",
            &[&org.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(holds, 10);
}

const GRANT: &str = "mutation($i: GrantCreditsInput!) { grantCredits(input: $i) { balance held } }";

#[tokio::test]
async fn twenty_concurrent_grants_with_one_key_grant_once() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let (before, held) = assert_books(&app.db, org.id).await;
    let input = json!({"i": {"amount": 250, "note": "goodwill", "idempotencyKey": "invoice-42"}});
    let calls = (0..20).map(|_| app.post(&org.admin, GRANT, input.clone()));
    let responses = join_all(calls).await;
    for (status, body) in &responses {
        assert_eq!(*status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(
            body["data"]["grantCredits"]["balance"],
            (before + 250).to_string()
        );
    }
    assert_eq!(assert_books(&app.db, org.id).await, (before + 250, held));
    let grants = app
        .ok(
            &org.owner,
            "{ credits { ledger(first: 100) { edges { node { kind amount note actor { kind role user { id } } } } } } }",
            json!({}),
        )
        .await;
    let grants: Vec<&Value> = grants["credits"]["ledger"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .filter(|n| n["kind"] == "GRANT")
        .collect();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0]["amount"], "250");
    assert_eq!(grants[0]["note"], "goodwill");
    assert_eq!(grants[0]["actor"]["kind"], "USER");
    assert_eq!(grants[0]["actor"]["role"], "admin");
    assert_eq!(
        grants[0]["actor"]["user"]["id"],
        json!(org.admin.user_id.unwrap())
    );

    // The same key for another amount is a client error and changes nothing.
    let (_, body) = app
        .post(
            &org.admin,
            GRANT,
            json!({"i": {"amount": 999, "idempotencyKey": "invoice-42"}}),
        )
        .await;
    assert_eq!(error_code(&body).as_deref(), Some("BAD_USER_INPUT"));
    assert_eq!(body["errors"][0]["extensions"]["field"], "idempotencyKey");
    assert_eq!(assert_books(&app.db, org.id).await, (before + 250, held));
}

#[tokio::test]
async fn capture_charges_at_most_the_hold_and_returns_the_rest() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let pool = app.db.runtime_pool(8);
    set_balance(&pool, org.id, 100).await;

    let tx = system_tx(&pool, org.id).await;
    let small = credits::hold(&tx, 5, "small", Some("ticket:1"))
        .await
        .unwrap();
    let big = credits::hold(&tx, 5, "big", None).await.unwrap();
    assert_eq!(credits::balance(&tx).await.unwrap().balance, 90);
    let small = credits::capture(&tx, small.id, 3).await.unwrap();
    assert_eq!(small.state, HoldState::Captured { charged: 3 });
    // More than held: charged the held amount only.
    let big = credits::capture(&tx, big.id, 50).await.unwrap();
    assert_eq!(big.state, HoldState::Captured { charged: 5 });
    tx.commit().await.unwrap();
    assert_eq!(assert_books(&app.db, org.id).await, (92, 0));

    let kinds: Vec<(String, i64, i64)> = app
        .db
        .admin()
        .await
        .query(
            "select kind, amount, held_change from credit_ledger
              where org_id = $1 and (id = $2 or hold_id = $2) order by created_at",
            &[&org.id, &small.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("HOLD".into(), -5, 5),
            ("CAPTURE".into(), 0, -3),
            ("RELEASE".into(), 2, -2)
        ]
    );
}

#[tokio::test]
async fn a_settled_hold_stays_settled_whatever_is_called_next() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let pool = app.db.runtime_pool(8);
    set_balance(&pool, org.id, 20).await;
    let tx = system_tx(&pool, org.id).await;
    let released = credits::hold(&tx, 4, "released", None).await.unwrap();
    let captured = credits::hold(&tx, 4, "captured", None).await.unwrap();
    credits::release(&tx, released.id).await.unwrap();
    credits::capture(&tx, captured.id, 4).await.unwrap();
    tx.commit().await.unwrap();
    let settled = assert_books(&app.db, org.id).await;
    assert_eq!(settled, (16, 0));

    // Capture after release, capture twice, release after capture: nothing changes.
    let tx = system_tx(&pool, org.id).await;
    let r = credits::capture(&tx, released.id, 4).await.unwrap();
    assert_eq!(r.state, HoldState::Released);
    let c = credits::capture(&tx, captured.id, 1).await.unwrap();
    assert_eq!(c.state, HoldState::Captured { charged: 4 });
    let c = credits::release(&tx, captured.id).await.unwrap();
    assert_eq!(c.state, HoldState::Captured { charged: 4 });
    // The same hold key again returns the first hold, in its present state, and reserves nothing.
    let again = credits::hold(&tx, 4, "released", None).await.unwrap();
    assert_eq!((again.id, again.state), (released.id, HoldState::Released));
    tx.commit().await.unwrap();
    assert_eq!(assert_books(&app.db, org.id).await, settled);

    // A hold of another organization, or none at all, is not found.
    let tx = system_tx(&pool, org.id).await;
    assert!(matches!(
        credits::capture(&tx, Uuid::new_v4(), 1).await,
        Err(AppError::NotFound(_))
    ));
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn concurrent_capture_and_release_settle_a_hold_once() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let pool = app.db.runtime_pool(8);
    set_balance(&pool, org.id, 100).await;
    for round in 0..20 {
        let tx = system_tx(&pool, org.id).await;
        let hold = credits::hold(&tx, 5, &format!("race-{round}"), None)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let capture = {
            let pool = pool.clone();
            let org = org.id;
            tokio::spawn(async move {
                let tx = system_tx(&pool, org).await;
                let h = credits::capture(&tx, hold.id, 3).await.unwrap();
                tx.commit().await.unwrap();
                h.state
            })
        };
        let release = {
            let pool = pool.clone();
            let org = org.id;
            tokio::spawn(async move {
                let tx = system_tx(&pool, org).await;
                let h = credits::release(&tx, hold.id).await.unwrap();
                tx.commit().await.unwrap();
                h.state
            })
        };
        let (a, b) = (capture.await.unwrap(), release.await.unwrap());
        // Both callers see the same, single outcome.
        assert_eq!(a, b, "round {round}");
        assert_ne!(a, HoldState::Open);
    }
    let (balance, held) = assert_books(&app.db, org.id).await;
    assert_eq!(held, 0);
    let charged: i64 = app
        .db
        .admin()
        .await
        .query_one(
            "select coalesce(sum(-held_change), 0)::bigint from credit_ledger where org_id = $1 and kind = 'CAPTURE'",
            &[&org.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(balance, 100 - charged);
}

#[tokio::test]
async fn a_crash_between_hold_and_capture_leaves_a_hold_that_can_be_released() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let pool = app.db.runtime_pool(8);
    set_balance(&pool, org.id, 10).await;
    // The hold commits with the work that needs it (the ticket and its job).
    let tx = system_tx(&pool, org.id).await;
    let hold = credits::hold(&tx, 6, "job-crash", None).await.unwrap();
    tx.commit().await.unwrap();

    // The worker captures, then dies before COMMIT: its connection goes away mid-transaction.
    let tx = system_tx(&pool, org.id).await;
    let captured = credits::capture(&tx, hold.id, 6).await.unwrap();
    assert_eq!(captured.state, HoldState::Captured { charged: 6 });
    drop(tx);
    assert_eq!(assert_books(&app.db, org.id).await, (4, 6));

    // The hold is still open, and releasing it returns every credit.
    let tx = system_tx(&pool, org.id).await;
    assert_eq!(
        credits::load_hold(&tx, hold.id)
            .await
            .unwrap()
            .unwrap()
            .state,
        HoldState::Open
    );
    let released = credits::release(&tx, hold.id).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(released.state, HoldState::Released);
    assert_eq!(assert_books(&app.db, org.id).await, (10, 0));
}

#[tokio::test]
async fn too_few_credits_refuse_the_hold_but_not_the_transaction() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let pool = app.db.runtime_pool(8);
    set_balance(&pool, org.id, 3).await;
    let tx = trusted_tx(&pool, Some(org.id), Some(Role::Agent), Access::ReadWrite).await;
    match credits::hold(&tx, 5, "too-big", None).await {
        Err(AppError::InsufficientCredits { needed, available }) => {
            assert_eq!((needed, available), (5, 3));
        }
        other => panic!("expected INSUFFICIENT_CREDITS, got {other:?}"),
    }
    // The transaction goes on: a ticket would still be created, and a smaller hold fits.
    let small = credits::hold(&tx, 3, "fits", None).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(small.state, HoldState::Open);
    assert_eq!(assert_books(&app.db, org.id).await, (0, 3));
}

#[tokio::test]
async fn the_monthly_allowance_is_granted_once_however_many_processes_try() {
    let db = TestDb::new().await;
    // Organizations made outside the API (as after an import) have had no allowance yet.
    let orgs: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let admin = db.admin().await;
    for (i, id) in orgs.iter().enumerate() {
        admin
            .execute(
                "insert into organizations (id, slug, name, plan) values ($1, $2, 'Imported', $3)",
                &[
                    id,
                    &format!("imported-{i}"),
                    &["free", "pro", "enterprise"][i],
                ],
            )
            .await
            .unwrap();
    }
    let pool = db.runtime_pool(10);
    let runs: Vec<_> = (0..5)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { allowance::grant_due(&pool).await.unwrap() })
        })
        .collect();
    let mut granted = 0;
    for run in runs {
        granted += run.await.unwrap();
    }
    assert_eq!(
        granted, 3,
        "each organization once, whichever process did it"
    );
    assert_eq!(allowance::grant_due(&pool).await.unwrap(), 0);
    for (id, expected) in orgs.iter().zip([100, 2000, 20000]) {
        assert_eq!(assert_books(&db, *id).await, (expected, 0));
        let row = admin
            .query_one(
                "select count(*), min(idempotency_key), min(actor_role) from credit_ledger where org_id = $1",
                &[id],
            )
            .await
            .unwrap();
        let (n, key, role): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(n, 1);
        assert!(
            key.starts_with("allowance:")
                && key.ends_with(&format!(
                    ":{}",
                    ["free", "pro", "enterprise"][orgs.iter().position(|o| o == id).unwrap()]
                )),
            "{key}"
        );
        assert_eq!(role, "system");
    }
}

const CREDITS: &str = "{ credits { balance held plan { id monthlyCredits seatLimit } } }";
const CHANGE_PLAN: &str = "mutation($p: ID!) { changePlan(plan: $p) { balance plan { id } } }";

#[tokio::test]
async fn an_upgrade_tops_up_the_month_once_and_a_new_organization_starts_with_its_allowance() {
    let app = TestApp::spawn().await;
    let mut owner = Caller::user("founder");
    owner.user_id = Some(app.user_id(&owner).await);
    let id = app
        .ok(
            &owner,
            "mutation { createOrganization(input: {name: \"Initech\", slug: \"initech\"}) { id plan } }",
            json!({}),
        )
        .await["createOrganization"]["id"]
        .as_str()
        .unwrap()
        .parse::<Uuid>()
        .unwrap();
    let owner = owner.in_org(id);
    let credits = app.ok(&owner, CREDITS, json!({})).await;
    assert_eq!(
        credits["credits"],
        json!({"balance": "100", "held": "0", "plan": {"id": "free", "monthlyCredits": "100", "seatLimit": 5}})
    );
    // Upgrade: topped up to the Pro allowance. Down and up again: nothing more this month.
    let up = app.ok(&owner, CHANGE_PLAN, json!({"p": "pro"})).await;
    assert_eq!(
        up["changePlan"],
        json!({"balance": "2000", "plan": {"id": "pro"}})
    );
    app.ok(&owner, CHANGE_PLAN, json!({"p": "free"})).await;
    let again = app.ok(&owner, CHANGE_PLAN, json!({"p": "pro"})).await;
    assert_eq!(again["changePlan"]["balance"], "2000");
    assert_eq!(assert_books(&app.db, id).await, (2000, 0));

    // An unknown plan is bad input and changes nothing.
    let (_, body) = app
        .post(&owner, CHANGE_PLAN, json!({"p": "platinum"}))
        .await;
    assert_eq!(error_code(&body).as_deref(), Some("BAD_USER_INPUT"));
    assert_eq!(body["errors"][0]["extensions"]["field"], "plan");
    let plans = app.ok(&owner, "{ plans { id } }", json!({})).await;
    assert_eq!(
        plans["plans"],
        json!([{"id": "free"}, {"id": "pro"}, {"id": "enterprise"}])
    );
}

const INVITE: &str =
    "mutation($e: String!) { inviteMember(input: {email: $e, role: AGENT}) { invitation { id } } }";
const ADD: &str = "mutation($u: ID!) { addMember(input: {userId: $u, role: VIEWER}) { role } }";

/// An organization on the Free plan (5 seats) with its owner and three members: one seat left.
async fn free_org(app: &TestApp) -> OrgFixture {
    let org = org_fixture(app, "small").await;
    let (_, body) = app
        .post(&org.owner, CHANGE_PLAN, json!({"p": "free"}))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    org
}

#[tokio::test]
async fn seats_are_limited_by_the_plan_counting_pending_invitations() {
    let app = TestApp::spawn().await;
    let org = free_org(&app).await;
    let invited = app
        .ok(&org.admin, INVITE, json!({"e": "fifth@example.com"}))
        .await["inviteMember"]["invitation"]["id"]
        .clone();
    // Five seats taken: no invitation or addition fits, and each failure writes nothing.
    let newcomer = app.user_id(&Caller::user("newcomer")).await;
    for (query, vars) in [
        (INVITE, json!({"e": "sixth@example.com"})),
        (ADD, json!({"u": newcomer})),
    ] {
        let (_, body) = app.post(&org.admin, query, vars).await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("BAD_USER_INPUT"),
            "{body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("seat"), "{message}");
    }
    let count = app
        .ok(
            &org.owner,
            "{ members { totalCount } invitations { id } }",
            json!({}),
        )
        .await;
    assert_eq!(count["members"]["totalCount"], 4);
    assert_eq!(count["invitations"].as_array().unwrap().len(), 1);
    // Revoking the invitation frees its seat.
    app.ok(
        &org.admin,
        "mutation($id: ID!) { revokeInvitation(id: $id) { id } }",
        json!({"id": invited}),
    )
    .await;
    app.ok(&org.admin, ADD, json!({"u": newcomer})).await;

    // A plan with fewer seats than are used cannot be chosen: move up, fill a sixth seat, try down.
    app.ok(&org.owner, CHANGE_PLAN, json!({"p": "pro"})).await;
    app.ok(&org.admin, INVITE, json!({"e": "sixth@example.com"}))
        .await;
    let (_, body) = app
        .post(&org.owner, CHANGE_PLAN, json!({"p": "free"}))
        .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("BAD_USER_INPUT"),
        "{body}"
    );
    let plan = app.ok(&org.owner, CREDITS, json!({})).await;
    assert_eq!(plan["credits"]["plan"]["id"], "pro");
}

#[tokio::test]
async fn concurrent_invitations_cannot_overfill_the_last_seat() {
    let app = TestApp::spawn().await;
    let org = free_org(&app).await;
    let calls = (0..8).map(|i| {
        app.post(
            &org.admin,
            INVITE,
            json!({"e": format!("racer-{i}@example.com")}),
        )
    });
    let results = join_all(calls).await;
    let ok = results
        .iter()
        .filter(|(_, body)| body.get("errors").is_none())
        .count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter(|(_, b)| b.get("errors").is_some())
            .all(|(_, b)| error_code(b).as_deref() == Some("BAD_USER_INPUT"))
    );
}

#[tokio::test]
async fn the_database_refuses_grants_and_plan_changes_to_other_roles_and_any_direct_change() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let pool = app.db.runtime_pool(8);
    let before = assert_books(&app.db, org.id).await;
    let insert = "insert into credit_ledger (org_id, kind, amount, idempotency_key, balance_after, held_after)
                  values ($1, $2, 100, $3, 0, 0)";
    for role in [Role::Agent, Role::Viewer, Role::Analyst] {
        for kind in ["GRANT", "PURCHASE", "ADJUSTMENT", "REFUND"] {
            let tx = trusted_tx(&pool, Some(org.id), Some(role), Access::ReadWrite).await;
            let err = tx
                .execute(insert, &[&org.id, &kind, &format!("sneaky-{role}-{kind}")])
                .await
                .unwrap_err();
            assert_eq!(
                sql_state(&err),
                Some(tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
                "{role} {kind}: {err:?}"
            );
            tx.rollback().await.unwrap();
        }
        // Nor may they change the plan: the row is not theirs to update.
        let tx = trusted_tx(&pool, Some(org.id), Some(role), Access::ReadWrite).await;
        let n = tx
            .execute(
                "update organizations set plan = 'enterprise' where id = $1",
                &[&org.id],
            )
            .await
            .unwrap();
        assert_eq!(n, 0, "{role} changed the plan");
        tx.rollback().await.unwrap();
    }
    // An admin may grant in SQL too; but nobody writes balances or rewrites the ledger directly.
    for role in [Role::Owner, Role::Admin] {
        for sql in [
            "update credit_balances set balance = balance + 1000",
            "insert into credit_balances (org_id) values (gen_random_uuid())",
            "update credit_ledger set amount = amount + 1000",
            "delete from credit_ledger",
            "truncate credit_ledger",
        ] {
            let tx = trusted_tx(&pool, Some(org.id), Some(role), Access::ReadWrite).await;
            let err = tx.execute(sql, &[]).await.unwrap_err();
            assert_eq!(
                sql_state(&err),
                Some(tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
                "{role}: {sql}: {err:?}"
            );
            tx.rollback().await.unwrap();
        }
    }
    // Not even the table's owner may rewrite the ledger.
    let admin = app.db.admin().await;
    for sql in [
        "update credit_ledger set amount = amount + 1000",
        "delete from credit_ledger",
        "truncate credit_ledger cascade",
    ] {
        let err = admin.batch_execute(sql).await.unwrap_err();
        assert!(
            err.as_db_error().unwrap().message().contains("append-only"),
            "{sql}: {err:?}"
        );
    }
    // A balance-after sent by the writer is ignored: the database computes it.
    let tx = trusted_tx(&pool, Some(org.id), Some(Role::Admin), Access::ReadWrite).await;
    let row = tx
        .query_one(
            "insert into credit_ledger (org_id, kind, amount, idempotency_key, balance_after, held_after)
             values ($1, 'GRANT', 7, 'sql-grant', 999999, 999999) returning balance_after, held_after",
            &[&org.id],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, i64>(0), row.get::<_, i64>(1)),
        (before.0 + 7, before.1)
    );
    tx.commit().await.unwrap();
    assert_eq!(
        assert_books(&app.db, org.id).await,
        (before.0 + 7, before.1)
    );
}

#[tokio::test]
async fn another_organization_sees_and_touches_nothing_of_our_credits() {
    let app = TestApp::spawn().await;
    let a = org_fixture(&app, "acme").await;
    let b = org_fixture(&app, "globex").await;
    let pool = app.db.runtime_pool(8);
    let tx = system_tx(&pool, a.id).await;
    let hold = credits::hold(&tx, 5, "a-job", None).await.unwrap();
    tx.commit().await.unwrap();
    app.ok(
        &a.admin,
        GRANT,
        json!({"i": {"amount": 11, "idempotencyKey": "a-grant"}}),
    )
    .await;
    let a_books = assert_books(&app.db, a.id).await;

    // B's people see B's credits only.
    let b_view = app
        .ok(
            &b.owner,
            "{ credits { balance held ledger(first: 100) { totalCount edges { node { id reference } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        b_view["credits"]["held"], "1",
        "only the hold of B's own ticket analysis"
    );
    let b_text = b_view.to_string();
    assert!(!b_text.contains(&hold.id.to_string()));
    // B's admin cannot act in A: naming A is refused before anything runs.
    let b_in_a = b.admin.clone().in_org(a.id);
    let (_, body) = app
        .post(
            &b_in_a,
            GRANT,
            json!({"i": {"amount": 5, "idempotencyKey": "x"}}),
        )
        .await;
    assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"));

    // In SQL, as B: A's rows are invisible, A's hold cannot be settled, and writing into A is refused.
    let tx = trusted_tx(&pool, Some(b.id), Some(Role::Owner), Access::ReadWrite).await;
    for table in ["credit_ledger", "credit_balances", "audit_log"] {
        let n: i64 = tx
            .query_one(
                &format!("select count(*) from {table} where org_id = $1"),
                &[&a.id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table}");
    }
    assert!(matches!(
        credits::release(&tx, hold.id).await,
        Err(AppError::NotFound(_))
    ));
    let err = tx
        .execute(
            "insert into credit_ledger (org_id, kind, amount, idempotency_key, balance_after, held_after)
             values ($1, 'GRANT', 100, 'into-a', 0, 0)",
            &[&a.id],
        )
        .await
        .unwrap_err();
    assert_eq!(
        sql_state(&err),
        Some(tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    tx.rollback().await.unwrap();
    assert_eq!(assert_books(&app.db, a.id).await, a_books);
}

#[tokio::test]
async fn the_ledger_pages_newest_first_and_records_request_and_actor() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let mut request_ids = vec![];
    for n in 1..=5 {
        let req = org.admin.apply(
            app.http
                .post(format!("{}/graphql", app.base))
                .header("x-request-id", format!("req-grant-{n}"))
                .json(&json!({"query": GRANT, "variables": {"i": {"amount": n, "idempotencyKey": format!("k{n}")}}})),
        );
        let raw = crate::common::send_raw(req).await;
        assert!(raw.json().get("errors").is_none(), "{}", raw.json());
        // The server's id, not the client's (which only the audit trail keeps, apart).
        request_ids.push(raw.header("x-request-id").unwrap().to_owned());
    }
    let page = |after: Value| {
        app.ok(
            &org.viewer,
            "query($a: String) { credits { ledger(first: 2, after: $a) {
                totalCount pageInfo { hasNextPage endCursor }
                edges { node { kind amount balanceAfter requestId actor { kind } } } } } }",
            json!({"a": after}),
        )
    };
    let first = page(Value::Null).await;
    let ledger = &first["credits"]["ledger"];
    // Allowance, the fixture's Pro top-up, its ticket's analysis hold, and five grants.
    assert_eq!(ledger["totalCount"], 8);
    assert_eq!(ledger["pageInfo"]["hasNextPage"], true);
    let top = &ledger["edges"][0]["node"];
    assert_eq!(top["kind"], "GRANT");
    assert_eq!(top["amount"], "5");
    assert_eq!(top["requestId"], request_ids[4].as_str());
    assert_ne!(top["requestId"], "req-grant-5");
    // 2000 a month on Pro, 1 held for the fixture ticket's analysis, 15 granted.
    assert_eq!(top["balanceAfter"], (2000 - 1 + 15).to_string());
    let mut seen = vec![];
    let mut cursor = Value::Null;
    loop {
        let p = page(cursor).await;
        let l = &p["credits"]["ledger"];
        for e in l["edges"].as_array().unwrap() {
            seen.push(big_int(&e["node"]["balanceAfter"]).unwrap());
        }
        if l["pageInfo"]["hasNextPage"] != true {
            break;
        }
        cursor = l["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, vec![2014, 2009, 2005, 2002, 2000, 1999, 2000, 100]);

    // Bad input is named.
    let (_, body) = app
        .post(
            &org.viewer,
            "{ credits { ledger(first: 500) { totalCount } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body).as_deref(), Some("BAD_USER_INPUT"));
    for (amount, key) in [
        (json!(0), "k"),
        (json!("0"), "k"),
        (json!(-5), "k"),
        (json!("-5"), "k"),
        (json!(10_000_001), "k"),
        (json!("10000001"), "k"),
        (json!(5), ""),
        (json!("5"), "   "),
    ] {
        let (_, body) = app
            .post(
                &org.admin,
                GRANT,
                json!({"i": {"amount": amount, "idempotencyKey": key}}),
            )
            .await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("BAD_USER_INPUT"),
            "{amount} {key:?}"
        );
    }
}

#[tokio::test]
async fn the_server_itself_can_hold_and_settle_but_never_create_credits() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let pool = app.db.runtime_pool(8);
    let before = assert_books(&app.db, org.id).await;
    for kind in ["GRANT", "PURCHASE", "ADJUSTMENT", "REFUND"] {
        let tx = system_tx(&pool, org.id).await;
        let err = tx
            .execute(
                "insert into credit_ledger (org_id, kind, amount, idempotency_key, balance_after, held_after)
                 values ($1, $2, 100, $3, 0, 0)",
                &[&org.id, &kind, &format!("system-{kind}")],
            )
            .await
            .unwrap_err();
        assert_eq!(
            sql_state(&err),
            Some(tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "system {kind}"
        );
        tx.rollback().await.unwrap();
    }
    // A release can never return more than its hold held.
    let tx = system_tx(&pool, org.id).await;
    let hold = credits::hold(&tx, 2, "small", None).await.unwrap();
    let err = tx
        .execute(
            "insert into credit_ledger (org_id, kind, amount, held_change, hold_id, idempotency_key, balance_after, held_after)
             values ($1, 'RELEASE', 500, -500, $2, 'too-much', 0, 0)",
            &[&org.id, &hold.id],
        )
        .await
        .unwrap_err();
    let constraint = match &err {
        AppError::Internal(cause) => cause
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(|e| e.as_db_error())
            .and_then(|e| e.constraint())
            .map(str::to_owned),
        _ => None,
    };
    assert_eq!(
        constraint.as_deref(),
        Some("credit_ledger_hold_settled"),
        "{err:?}"
    );
    tx.rollback().await.unwrap();
    assert_eq!(assert_books(&app.db, org.id).await, before);
    // Listing organizations due an allowance is for the scheduler alone: with one due, an owner's
    // transaction lists nothing and the system's lists it.
    app.db
        .admin()
        .await
        .execute(
            "insert into organizations (id, slug, name) values ($1, 'imported', 'Imported')",
            &[&Uuid::now_v7()],
        )
        .await
        .unwrap();
    let count = "select count(*) from auth_private.organizations_due_allowance(null, 100)";
    let tx = trusted_tx(&pool, Some(org.id), Some(Role::Owner), Access::ReadOnly).await;
    let listed: i64 = tx.query_one(count, &[]).await.unwrap().get(0);
    assert_eq!(listed, 0);
    tx.rollback().await.unwrap();
    let scheduler = TenantTx::begin(
        &pool,
        &Credentials::Trusted(TenantContext {
            system: true,
            ..TenantContext::default()
        }),
        TxOptions::new(Access::ReadOnly, 10_000),
    )
    .await
    .unwrap();
    let listed: i64 = scheduler.query_one(count, &[]).await.unwrap().get(0);
    assert_eq!(listed, 1);
    scheduler.rollback().await.unwrap();

    // A hold key names one piece of work: reusing it for another amount is refused, not replayed.
    let tx = system_tx(&pool, org.id).await;
    credits::hold(&tx, 2, "job-1", Some("ticket:1"))
        .await
        .unwrap();
    assert!(
        credits::hold(&tx, 3, "job-1", Some("ticket:1"))
            .await
            .is_err()
    );
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn a_downgrade_racing_invitations_never_leaves_more_seats_than_the_plan_allows() {
    let app = TestApp::spawn().await;
    for round in 0..3 {
        let org = org_fixture(&app, &format!("race{round}")).await;
        // Pro, four members: a downgrade to Free (5 seats) races six invitations.
        let downgrade = app.post(&org.owner, CHANGE_PLAN, json!({"p": "free"}));
        let invites = (0..6).map(|i| {
            app.post(
                &org.admin,
                INVITE,
                json!({"e": format!("r{round}-{i}@example.com")}),
            )
        });
        let (down, invited) = tokio::join!(downgrade, join_all(invites));
        for (_, body) in invited.iter().chain(std::iter::once(&down)) {
            if let Some(code) = error_code(body) {
                assert_eq!(code, "BAD_USER_INPUT", "{body}");
            }
        }
        let state = app
            .ok(
                &org.owner,
                "{ members { totalCount } invitations { id } credits { plan { id seatLimit } } }",
                json!({}),
            )
            .await;
        let used = state["members"]["totalCount"].as_i64().unwrap()
            + state["invitations"].as_array().unwrap().len() as i64;
        if let Some(limit) = state["credits"]["plan"]["seatLimit"].as_i64() {
            assert!(used <= limit, "round {round}: {used} seats on {state}");
        }
    }
}

const BOOKS: &str = "{ credits { balance held ledger(first: 3) { edges { node {
    kind amount heldChange balanceAfter heldAfter } } } } }";

/// The newest `n` ledger entries as `[kind, amount, heldChange, balanceAfter, heldAfter]`, each amount
/// as sent: a `BigInt` string.
fn entries(view: &Value, n: usize) -> Vec<[Value; 5]> {
    view["credits"]["ledger"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .take(n)
        .map(|e| {
            let e = &e["node"];
            ["kind", "amount", "heldChange", "balanceAfter", "heldAfter"].map(|f| e[f].clone())
        })
        .collect()
}

/// `[kind, amount, heldChange, balanceAfter, heldAfter]` as the API should send them.
fn entry(kind: &str, amount: i64, held_change: i64, after: i64, held_after: i64) -> [Value; 5] {
    [
        json!(kind),
        json!(amount.to_string()),
        json!(held_change.to_string()),
        json!(after.to_string()),
        json!(held_after.to_string()),
    ]
}

#[tokio::test]
async fn grants_past_2_to_the_31_are_read_back_exactly_as_big_int_strings() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let pool = app.db.runtime_pool(8);
    let near = i64::from(i32::MAX) - 3_000_000;
    set_balance(&pool, org.id, near).await;

    // A grant (amount sent as a string) that takes the balance past 2^31 - 1.
    let crossed = app
        .ok(
            &org.admin,
            GRANT,
            json!({"i": {"amount": "10000000", "idempotencyKey": "past-2-31"}}),
        )
        .await;
    assert_eq!(
        crossed["grantCredits"],
        json!({"balance": "2154483647", "held": "0"})
    );
    assert!(big_int(&crossed["grantCredits"]["balance"]).unwrap() > i64::from(i32::MAX));

    // Up to 5,000,000,000 with a grant whose amount is a JSON number.
    set_balance(&pool, org.id, 4_990_000_000).await;
    let five = app
        .ok(
            &org.admin,
            GRANT,
            json!({"i": {"amount": 10_000_000, "idempotencyKey": "to-five-billion"}}),
        )
        .await;
    assert_eq!(five["grantCredits"]["balance"], "5000000000");
    let view = app.ok(&org.viewer, BOOKS, json!({})).await;
    assert_eq!(view["credits"]["balance"], "5000000000");
    assert_eq!(view["credits"]["held"], "0");
    assert_eq!(
        entries(&view, 3),
        vec![
            entry("GRANT", 10_000_000, 0, 5_000_000_000, 0),
            entry(
                "ADJUSTMENT",
                4_990_000_000 - 2_154_483_647,
                0,
                4_990_000_000,
                0
            ),
            entry("GRANT", 10_000_000, 0, 2_154_483_647, 0),
        ]
    );
    assert_eq!(assert_books(&app.db, org.id).await, (5_000_000_000, 0));

    // Analytics adds them up exactly too (it used to clamp at 2^31 - 1).
    let added: i64 = app
        .db
        .admin()
        .await
        .query_one(
            "select coalesce(sum(amount), 0)::bigint from credit_ledger where org_id = $1 and amount > 0
                and kind in ('GRANT', 'PURCHASE', 'ALLOWANCE', 'REFUND', 'ADJUSTMENT')",
            &[&org.id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(added > 2 * i64::from(i32::MAX), "{added}");
    let now = chrono::Utc::now();
    let usage = app
        .ok(
            &org.owner,
            "query($from: DateTime!, $to: DateTime!) { analytics(from: $from, to: $to) {
                creditUsage(interval: DAY) { charged added } } }",
            json!({"from": now - chrono::Duration::days(2), "to": now + chrono::Duration::days(1)}),
        )
        .await;
    let points = usage["analytics"]["creditUsage"].as_array().unwrap();
    let sum = |f: &str| -> i64 { points.iter().map(|p| big_int(&p[f]).unwrap()).sum() };
    assert_eq!((sum("charged"), sum("added")), (0, added), "{usage}");

    // A grant of 5,000,000,000 parses, and is refused by the typo guard (at most 10,000,000 at once).
    let (_, body) = app
        .post(
            &org.admin,
            GRANT,
            json!({"i": {"amount": "5000000000", "idempotencyKey": "too-big"}}),
        )
        .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("BAD_USER_INPUT"),
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["field"], "amount");
    assert_eq!(assert_books(&app.db, org.id).await, (5_000_000_000, 0));
}

#[tokio::test]
async fn holds_and_captures_beyond_2_to_the_53_keep_every_credit_in_the_ledger() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let pool = app.db.runtime_pool(8);
    // 2^53 + 1: the first integer a JSON number read by JavaScript cannot hold.
    let start = (1_i64 << 53) + 1;
    set_balance(&pool, org.id, start).await;
    let tx = system_tx(&pool, org.id).await;
    let hold = credits::hold(&tx, 3_000_000_000, "big-job", Some("ticket:big"))
        .await
        .unwrap();
    let hold = credits::capture(&tx, hold.id, 2_500_000_001).await.unwrap();
    assert_eq!(
        hold.state,
        HoldState::Captured {
            charged: 2_500_000_001
        }
    );
    tx.commit().await.unwrap();
    let end = start - 2_500_000_001;
    assert_eq!(assert_books(&app.db, org.id).await, (end, 0));

    let view = app.ok(&org.viewer, BOOKS, json!({})).await;
    assert_eq!(view["credits"]["balance"], "9007196754740992");
    assert_eq!(big_int(&view["credits"]["balance"]), Some(end));
    let after_hold = start - 3_000_000_000;
    assert_eq!(
        entries(&view, 3),
        vec![
            entry("RELEASE", 499_999_999, -499_999_999, end, 0),
            entry("CAPTURE", 0, -2_500_000_001, after_hold, 499_999_999),
            entry(
                "HOLD",
                -3_000_000_000,
                3_000_000_000,
                after_hold,
                3_000_000_000
            ),
        ]
    );
}

#[tokio::test]
async fn bad_big_int_amounts_are_bad_user_input_and_change_nothing() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let before = assert_books(&app.db, org.id).await;
    let entries = || async {
        app.db
            .admin()
            .await
            .query_one(
                "select count(*) from credit_ledger where org_id = $1",
                &[&org.id],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let count = entries().await;

    let as_variables = [
        json!("12a"),
        json!("1e3"),
        json!(9_223_372_036_854_775_808_u64),
        json!("9223372036854775808"),
        json!(1.5),
        json!(1e3),
        json!("1.5"),
        json!("+5"),
        json!(" 5"),
        json!(""),
        json!(true),
        json!([5]),
    ];
    let mut cases: Vec<(String, Value)> = as_variables
        .into_iter()
        .map(|amount| {
            (
                GRANT.to_owned(),
                json!({"i": {"amount": amount, "idempotencyKey": "bad"}}),
            )
        })
        .collect();
    for literal in [r#""12a""#, r#""1e3""#, "9223372036854775808", "1.5", "1e3"] {
        cases.push((
            format!(
                "mutation {{ grantCredits(input: {{amount: {literal}, idempotencyKey: \"bad\"}}) {{ balance }} }}"
            ),
            json!({}),
        ));
    }
    for (query, variables) in cases {
        let (_, body) = app.post(&org.admin, &query, variables.clone()).await;
        let case = format!("{query} {variables}");
        assert_eq!(
            error_code(&body).as_deref(),
            Some("BAD_USER_INPUT"),
            "{case}: {body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("\"BigInt\""), "{case}: {message}");
        assert!(body["data"].is_null(), "{case}: nothing ran: {body}");
    }
    assert_eq!(assert_books(&app.db, org.id).await, before);
    assert_eq!(entries().await, count, "no ledger entry was written");
}

#[tokio::test]
async fn every_credit_column_is_bigint() {
    let db = TestDb::new().await;
    let columns: Vec<(String, String, String)> = db
        .admin()
        .await
        .query(
            "select table_name::text, column_name::text, data_type::text
               from information_schema.columns
              where table_schema = 'public'
                and (table_name, column_name) in (
                    ('credit_balances', 'balance'), ('credit_balances', 'held'),
                    ('credit_ledger', 'amount'), ('credit_ledger', 'held_change'),
                    ('credit_ledger', 'balance_after'), ('credit_ledger', 'held_after'),
                    ('plans', 'monthly_credits'),
                    ('ticket_analyses', 'credits_held'), ('ticket_analyses', 'credits_charged'))
              order by 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(columns.len(), 9, "{columns:?}");
    for (table, column, ty) in &columns {
        assert_eq!(ty, "bigint", "{table}.{column}");
    }
}

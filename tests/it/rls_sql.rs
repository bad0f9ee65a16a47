//! Row level security, checked with raw SQL as the runtime role (`deskgraph_app`): no context means no
//! rows, one organization's context never reaches another's rows, the database repeats the role checks
//! that guard memberships and API keys (DESIGN §2 rule 6), secrets are write-only, and the SECURITY
//! DEFINER functions are the only way around RLS (rule 8).

// Helpers here are test code too: a failed unwrap is a failed test with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use deskgraph::authz::Role;
use deskgraph::db::Pool;
use deskgraph::db::{Access, Credentials, TenantTx, TxOptions};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::common::{APP_ROLE, TestDb, sql_state, trusted_tx};

/// Every table with an `org_id` column.
const TENANT_TABLES: &[&str] = &[
    "memberships",
    "invitations",
    "api_keys",
    "workspaces",
    "ticket_counters",
    "tickets",
    "ticket_comments",
];

struct Seeded {
    db: TestDb,
    pool: Pool,
    a: Uuid,
    b: Uuid,
}

/// Two organizations ("acme" and "globex") seeded through the runtime role, each with a pending
/// invitation so that every tenant table has rows of both.
async fn seeded() -> Seeded {
    let db = TestDb::new().await;
    let pool = db.runtime_pool(4);
    let seeded = deskgraph::demo::seed(&pool).await.expect("demo data seeds");
    let (a, b) = (seeded.orgs["acme"], seeded.orgs["globex"]);
    for org in [a, b] {
        let tx = trusted_tx(&pool, Some(org), Some(Role::Owner), Access::ReadWrite).await;
        tx.execute(
            "insert into invitations (org_id, email, role, token_hash, expires_at)
             values ($1, 'invitee@people.example', 'agent', $2, now() + interval '7 days')",
            &[&org, &random_hash()],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    Seeded { db, pool, a, b }
}

fn random_hash() -> Vec<u8> {
    deskgraph::identity::auth::hash_secret(&Uuid::new_v4().to_string())
}

async fn admin_count(
    admin: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> i64 {
    admin.query_one(sql, params).await.unwrap().get(0)
}

/// Runs one statement as the runtime role in a fresh read-write transaction with the given context;
/// commits when it succeeds. Returns the number of rows it affected, or the SQLSTATE it failed with.
async fn attempt(
    pool: &Pool,
    org: Uuid,
    role: Role,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, SqlState> {
    let tx = trusted_tx(pool, Some(org), Some(role), Access::ReadWrite).await;
    match tx.execute(sql, params).await {
        Ok(n) => {
            tx.commit().await.unwrap();
            Ok(n)
        }
        Err(err) => {
            let code = sql_state(&err).unwrap_or_else(|| panic!("not a database error: {err:?}"));
            tx.rollback().await.unwrap();
            Err(code)
        }
    }
}

/// Reads one `bigint` in a fresh read-only transaction with the given context.
async fn count_as(pool: &Pool, org: Uuid, role: Role, sql: &str) -> i64 {
    let tx = trusted_tx(pool, Some(org), Some(role), Access::ReadOnly).await;
    let n = tx.query_one(sql, &[]).await.unwrap().get(0);
    tx.commit().await.unwrap();
    n
}

fn refused(result: Result<u64, SqlState>, what: &str) {
    assert_eq!(
        result,
        Err(SqlState::INSUFFICIENT_PRIVILEGE),
        "{what} must be refused by the database"
    );
}

#[tokio::test]
async fn without_a_tenant_context_every_tenant_table_reads_empty_and_rejects_writes() {
    let s = seeded().await;
    let admin = s.db.admin().await;
    let plain = s.pool.get().await.unwrap();
    for table in TENANT_TABLES.iter().chain(&["organizations", "users"]) {
        let sql = format!("select count(*) from {table}");
        let there = admin_count(&admin, &sql, &[]).await;
        assert!(
            there > 0,
            "the seed left {table} empty; the check would prove nothing"
        );
        let seen: i64 = plain.query_one(&sql, &[]).await.unwrap().get(0);
        assert_eq!(
            seen, 0,
            "{table}: a connection without context read {seen} of {there} rows"
        );
    }

    let ws: Uuid = admin
        .query_one(
            "select id from workspaces where org_id = $1 limit 1",
            &[&s.a],
        )
        .await
        .unwrap()
        .get(0);
    let ticket: Uuid = admin
        .query_one("select id from tickets where org_id = $1 limit 1", &[&s.a])
        .await
        .unwrap()
        .get(0);
    let inserts: [(&str, &str, Vec<&(dyn ToSql + Sync)>); 4] = [
        (
            "workspace",
            "insert into workspaces (org_id, name) values ($1, 'Sneaky')",
            vec![&s.a],
        ),
        (
            "ticket",
            "insert into tickets (org_id, workspace_id, title) values ($1, $2, 'Sneaky')",
            vec![&s.a, &ws],
        ),
        (
            "comment",
            "insert into ticket_comments (org_id, ticket_id, body) values ($1, $2, 'Sneaky')",
            vec![&s.a, &ticket],
        ),
        (
            "organization",
            "insert into organizations (id, slug, name) values (gen_random_uuid(), 'sneaky', 'Sneaky')",
            vec![],
        ),
    ];
    for (what, sql, params) in inserts {
        let err = plain
            .execute(sql, &params)
            .await
            .expect_err(&format!("inserting a {what} without context must fail"));
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "inserting a {what}: {err}"
        );
    }
    for sql in [
        "update tickets set title = 'pwned'",
        "delete from ticket_comments",
        "update workspaces set name = 'pwned'",
        "delete from memberships",
    ] {
        assert_eq!(plain.execute(sql, &[]).await.unwrap(), 0, "{sql}");
    }

    for (table, column) in [
        ("workspaces", "name"),
        ("tickets", "title"),
        ("ticket_comments", "body"),
    ] {
        let sql = format!("select count(*) from {table} where {column} in ('Sneaky', 'pwned')");
        assert_eq!(
            admin_count(&admin, &sql, &[]).await,
            0,
            "{table} was written"
        );
    }
    assert_eq!(
        admin_count(
            &admin,
            "select count(*) from organizations where slug = 'sneaky'",
            &[]
        )
        .await,
        0
    );
    let comments = admin_count(&admin, "select count(*) from ticket_comments", &[]).await;
    assert!(comments > 0, "comments were deleted without context");
}

#[tokio::test]
async fn a_transaction_whose_context_names_no_organization_sees_no_tenant_rows() {
    let s = seeded().await;
    // The server opens exactly this for a signed-in user who has not chosen an organization.
    let tx = trusted_tx(&s.pool, None, Some(Role::Owner), Access::ReadWrite).await;
    for table in TENANT_TABLES.iter().chain(&["organizations", "users"]) {
        let n: i64 = tx
            .query_one(&format!("select count(*) from {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} is visible with an empty organization");
    }
    let err = tx
        .execute(
            "insert into workspaces (org_id, name) values ($1, 'Sneaky')",
            &[&s.a],
        )
        .await
        .expect_err("no organization, no writes");
    assert_eq!(sql_state(&err), Some(SqlState::INSUFFICIENT_PRIVILEGE));
}

#[tokio::test]
async fn in_one_organizations_context_no_row_of_another_organization_is_visible() {
    let s = seeded().await;
    let admin = s.db.admin().await;
    for (org, other) in [(s.a, s.b), (s.b, s.a)] {
        let tx = trusted_tx(&s.pool, Some(org), Some(Role::Owner), Access::ReadOnly).await;
        for table in TENANT_TABLES {
            let foreign: i64 = tx
                .query_one(
                    &format!("select count(*) from {table} where org_id <> $1"),
                    &[&org],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(
                foreign, 0,
                "{table}: {foreign} rows of another organization are visible"
            );
            let own: i64 = tx
                .query_one(&format!("select count(*) from {table}"), &[])
                .await
                .unwrap()
                .get(0);
            let expected = admin_count(
                &admin,
                &format!("select count(*) from {table} where org_id = $1"),
                &[&org],
            )
            .await;
            assert!(
                expected > 0,
                "{table} has no rows of {org}; nothing is proved"
            );
            assert_eq!(
                own, expected,
                "{table}: the organization does not see all its own rows"
            );
            // Naming the other organization explicitly does not help either.
            let named: i64 = tx
                .query_one(
                    &format!("select count(*) from {table} where org_id = $1"),
                    &[&other],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(
                named, 0,
                "{table}: filtering on the other org's id found rows"
            );
        }
        let orgs: Vec<Uuid> = tx
            .query("select id from organizations", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(orgs, [org]);
        let users: BTreeSet<Uuid> = tx
            .query("select id from users", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let members: BTreeSet<Uuid> = admin
            .query("select user_id from memberships where org_id = $1", &[&org])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            users, members,
            "users visible in {org} must be exactly its members"
        );
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn a_member_of_two_organizations_sees_only_their_own_membership_of_the_other_one() {
    let s = seeded().await;
    let admin = s.db.admin().await;
    // The demo has one person in both organizations.
    let shared: Uuid = admin
        .query_one(
            "select user_id from memberships where org_id = $1
             intersect select user_id from memberships where org_id = $2",
            &[&s.a, &s.b],
        )
        .await
        .unwrap()
        .get(0);
    let tx = TenantTx::begin(
        &s.pool,
        &Credentials::Trusted(deskgraph::db::TenantContext {
            org_id: Some(s.a),
            user_id: Some(shared),
            api_key_id: None,
            role: Some(Role::Agent),
            system: false,
        }),
        TxOptions::new(Access::ReadOnly, 10_000),
    )
    .await
    .unwrap();
    // Their own memberships (for the organization picker) are the only rows of B they can see.
    let foreign: Vec<(Uuid, Uuid)> = tx
        .query(
            "select org_id, user_id from memberships where org_id <> $1",
            &[&s.a],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(foreign, [(s.b, shared)]);
    let mut orgs: Vec<Uuid> = tx
        .query("select id from organizations", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    orgs.sort();
    let mut both = vec![s.a, s.b];
    both.sort();
    assert_eq!(
        orgs, both,
        "the picker lists the organizations the user belongs to"
    );
    for table in TENANT_TABLES.iter().filter(|t| **t != "memberships") {
        let n: i64 = tx
            .query_one(
                &format!("select count(*) from {table} where org_id <> $1"),
                &[&s.a],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            n, 0,
            "{table}: being a member of B shows B's rows while acting in A"
        );
    }
    // Users: the members of A, and the user themselves; none of B's other members.
    let users: BTreeSet<Uuid> = tx
        .query("select id from users", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected: BTreeSet<Uuid> = admin
        .query("select user_id from memberships where org_id = $1", &[&s.a])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    expected.insert(shared);
    assert_eq!(users, expected);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn writes_that_name_or_move_rows_into_another_organization_are_rejected() {
    let s = seeded().await;
    let admin = s.db.admin().await;
    let first = |table: &'static str, org: Uuid| {
        let admin = &admin;
        async move {
            admin
                .query_one(
                    &format!("select id from {table} where org_id = $1 order by id limit 1"),
                    &[&org],
                )
                .await
                .unwrap()
                .get::<_, Uuid>(0)
        }
    };
    let (a_ws, a_ticket, a_comment) = (
        first("workspaces", s.a).await,
        first("tickets", s.a).await,
        first("ticket_comments", s.a).await,
    );
    let (b_ws, b_ticket) = (first("workspaces", s.b).await, first("tickets", s.b).await);
    let b_user: Uuid = admin
        .query_one(
            "select user_id from memberships where org_id = $1
             except select user_id from memberships where org_id = $2 limit 1",
            &[&s.b, &s.a],
        )
        .await
        .unwrap()
        .get(0);
    let snapshot = |org: Uuid| {
        let admin = &admin;
        async move {
            let mut out = vec![];
            for table in TENANT_TABLES {
                out.push(
                    admin
                        .query_one(
                            &format!(
                                "select count(*), md5(coalesce(string_agg(t::text, ',' order by t::text), ''))
                                   from {table} t where org_id = $1"
                            ),
                            &[&org],
                        )
                        .await
                        .map(|r| (table, r.get::<_, i64>(0), r.get::<_, String>(1)))
                        .unwrap(),
                );
            }
            out
        }
    };
    let b_before = snapshot(s.b).await;
    let hash = random_hash();
    let cases: Vec<(&str, &str, Vec<&(dyn ToSql + Sync)>)> = vec![
        (
            "a workspace in B",
            "insert into workspaces (org_id, name) values ($1, 'Trojan')",
            vec![&s.b],
        ),
        (
            "a ticket in B",
            "insert into tickets (org_id, workspace_id, title) values ($1, $2, 'Trojan')",
            vec![&s.b, &b_ws],
        ),
        (
            "a comment in B",
            "insert into ticket_comments (org_id, ticket_id, body) values ($1, $2, 'Trojan')",
            vec![&s.b, &b_ticket],
        ),
        (
            "a membership in B",
            "insert into memberships (org_id, user_id, role) values ($1, $2, 'owner')",
            vec![&s.b, &b_user],
        ),
        (
            "an API key in B",
            "insert into api_keys (org_id, name, role, prefix, secret_hash)
             values ($1, 'Trojan', 'admin', 'dg_trojan', $2)",
            vec![&s.b, &hash],
        ),
        (
            "an invitation to B",
            "insert into invitations (org_id, email, role, token_hash, expires_at)
             values ($1, 'trojan@evil.example', 'owner', $2, now() + interval '1 day')",
            vec![&s.b, &hash],
        ),
        (
            "moving a workspace to B",
            "update workspaces set org_id = $1 where id = $2",
            vec![&s.b, &a_ws],
        ),
        (
            "moving a comment to B",
            "update ticket_comments set org_id = $1 where id = $2",
            vec![&s.b, &a_comment],
        ),
        (
            "moving memberships to B",
            "update memberships set org_id = $1",
            vec![&s.b],
        ),
        (
            "moving the ticket counter to B",
            "update ticket_counters set org_id = $1",
            vec![&s.b],
        ),
    ];
    for (what, sql, params) in cases {
        refused(attempt(&s.pool, s.a, Role::Owner, sql, &params).await, what);
    }
    // Moving a ticket is stopped by its identity trigger before RLS even looks; either refusal will do.
    let moved = attempt(
        &s.pool,
        s.a,
        Role::Owner,
        "update tickets set org_id = $1 where id = $2",
        &[&s.b, &a_ticket],
    )
    .await;
    assert!(
        matches!(
            moved,
            Err(SqlState::INSUFFICIENT_PRIVILEGE) | Err(SqlState::CHECK_VIOLATION)
        ),
        "moving a ticket to B: {moved:?}"
    );
    let still_in_a = admin_count(
        &admin,
        "select count(*) from tickets where id = $1 and org_id = $2",
        &[&a_ticket, &s.a],
    )
    .await;
    assert_eq!(still_in_a, 1);

    // B's rows, addressed by id from A, are simply not there.
    for (what, sql, id) in [
        (
            "updating B's ticket",
            "update tickets set title = 'pwned', status = 'closed' where id = $1",
            &b_ticket,
        ),
        (
            "deleting B's ticket",
            "delete from tickets where id = $1",
            &b_ticket,
        ),
        (
            "renaming B's workspace",
            "update workspaces set name = 'pwned' where id = $1",
            &b_ws,
        ),
        (
            "deleting B's workspace",
            "delete from workspaces where id = $1",
            &b_ws,
        ),
        (
            "changing B's member",
            "update memberships set role = 'viewer' where user_id = $1",
            &b_user,
        ),
        (
            "removing B's member",
            "delete from memberships where user_id = $1",
            &b_user,
        ),
    ] {
        assert_eq!(
            attempt(&s.pool, s.a, Role::Owner, sql, &[id]).await,
            Ok(0),
            "{what} from A"
        );
    }
    assert_eq!(snapshot(s.b).await, b_before, "B's data changed");
}

#[tokio::test]
async fn an_agent_cannot_manage_memberships_invitations_or_api_keys_even_in_raw_sql() {
    let s = seeded().await;
    let admin = s.db.admin().await;
    let outsider: Uuid = admin
        .query_one(
            "select user_id from memberships where org_id = $1
             except select user_id from memberships where org_id = $2 limit 1",
            &[&s.b, &s.a],
        )
        .await
        .unwrap()
        .get(0);
    let members_of_a = || {
        let admin = &admin;
        async move {
            admin
                .query(
                    "select user_id, role from memberships where org_id = $1 order by user_id",
                    &[&s.a],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get::<_, Uuid>(0), r.get::<_, String>(1)))
                .collect::<Vec<_>>()
        }
    };
    let before = members_of_a().await;
    let hash = random_hash();
    let agent = Role::Agent;
    refused(
        attempt(
            &s.pool,
            s.a,
            agent,
            "insert into memberships (org_id, user_id, role) values ($1, $2, 'viewer')",
            &[&s.a, &outsider],
        )
        .await,
        "an agent adding a member",
    );
    assert_eq!(
        attempt(
            &s.pool,
            s.a,
            agent,
            "update memberships set role = 'owner'",
            &[]
        )
        .await,
        Ok(0),
        "an agent promoting members"
    );
    assert_eq!(
        attempt(&s.pool, s.a, agent, "delete from memberships", &[]).await,
        Ok(0),
        "an agent removing members"
    );
    refused(
        attempt(
            &s.pool,
            s.a,
            agent,
            "insert into api_keys (org_id, name, role, prefix, secret_hash)
             values ($1, 'mine', 'admin', 'dg_mine', $2)",
            &[&s.a, &hash],
        )
        .await,
        "an agent creating an API key",
    );
    refused(
        attempt(
            &s.pool,
            s.a,
            agent,
            "insert into invitations (org_id, email, role, token_hash, expires_at)
             values ($1, 'friend@people.example', 'agent', $2, now() + interval '1 day')",
            &[&s.a, &hash],
        )
        .await,
        "an agent inviting someone",
    );
    assert_eq!(
        attempt(
            &s.pool,
            s.a,
            agent,
            "update api_keys set revoked_at = now()",
            &[]
        )
        .await,
        Ok(0),
        "an agent revoking keys"
    );
    for table in ["api_keys", "invitations"] {
        let there = admin_count(
            &admin,
            &format!("select count(*) from {table} where org_id = $1"),
            &[&s.a],
        )
        .await;
        assert!(there > 0);
        let seen = count_as(
            &s.pool,
            s.a,
            agent,
            &format!("select count(*) from {table}"),
        )
        .await;
        assert_eq!(seen, 0, "an agent reads {table}");
        // The same read as an admin sees them: the refusal is the role's, not a broken context.
        let as_admin = count_as(
            &s.pool,
            s.a,
            Role::Admin,
            &format!("select count(*) from {table}"),
        )
        .await;
        assert_eq!(as_admin, there);
    }
    // Agents read the member list and work tickets; only membership changes are closed to them.
    let seen = count_as(&s.pool, s.a, agent, "select count(*) from memberships").await;
    assert_eq!(seen, before.len() as i64);
    assert_eq!(members_of_a().await, before, "memberships changed");
    let revoked = admin_count(
        &admin,
        "select count(*) from api_keys where revoked_at is not null",
        &[],
    )
    .await;
    assert_eq!(revoked, 0);
    let ws: Uuid = admin
        .query_one(
            "select id from workspaces where org_id = $1 limit 1",
            &[&s.a],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        attempt(
            &s.pool,
            s.a,
            agent,
            "insert into tickets (org_id, workspace_id, title) values ($1, $2, 'Agent work')",
            &[&s.a, &ws],
        )
        .await,
        Ok(1)
    );
}

#[tokio::test]
async fn an_admin_cannot_create_promote_demote_or_remove_owners_even_in_raw_sql() {
    let s = seeded().await;
    let admin_db = s.db.admin().await;
    let owner: Uuid = admin_db
        .query_one(
            "select user_id from memberships where org_id = $1 and role = 'owner'",
            &[&s.a],
        )
        .await
        .unwrap()
        .get(0);
    let agent_member: Uuid = admin_db
        .query_one(
            "select user_id from memberships where org_id = $1 and role = 'agent' limit 1",
            &[&s.a],
        )
        .await
        .unwrap()
        .get(0);
    let outsiders: Vec<Uuid> = admin_db
        .query(
            "select user_id from memberships where org_id = $1
             except select user_id from memberships where org_id = $2",
            &[&s.b, &s.a],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(outsiders.len() >= 2);
    let admin = Role::Admin;
    refused(
        attempt(
            &s.pool,
            s.a,
            admin,
            "insert into memberships (org_id, user_id, role) values ($1, $2, 'owner')",
            &[&s.a, &outsiders[0]],
        )
        .await,
        "an admin adding an owner",
    );
    refused(
        attempt(
            &s.pool,
            s.a,
            admin,
            "update memberships set role = 'owner' where user_id = $1",
            &[&agent_member],
        )
        .await,
        "an admin promoting an agent to owner",
    );
    refused(
        attempt(
            &s.pool,
            s.a,
            admin,
            "insert into invitations (org_id, email, role, token_hash, expires_at)
             values ($1, 'boss@people.example', 'owner', $2, now() + interval '1 day')",
            &[&s.a, &random_hash()],
        )
        .await,
        "an admin inviting an owner",
    );
    assert_eq!(
        attempt(
            &s.pool,
            s.a,
            admin,
            "delete from memberships where user_id = $1",
            &[&owner],
        )
        .await,
        Ok(0),
        "an admin removing the owner"
    );
    assert_eq!(
        attempt(
            &s.pool,
            s.a,
            admin,
            "update memberships set role = 'viewer' where user_id = $1",
            &[&owner],
        )
        .await,
        Ok(0),
        "an admin demoting the owner"
    );
    let owner_role: String = admin_db
        .query_one(
            "select role from memberships where org_id = $1 and user_id = $2",
            &[&s.a, &owner],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner_role, "owner");
    let agent_role: String = admin_db
        .query_one(
            "select role from memberships where org_id = $1 and user_id = $2",
            &[&s.a, &agent_member],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(agent_role, "agent");

    // What an admin may do, the database allows: the refusals above are about owners only.
    assert_eq!(
        attempt(
            &s.pool,
            s.a,
            admin,
            "insert into memberships (org_id, user_id, role) values ($1, $2, 'viewer')",
            &[&s.a, &outsiders[1]],
        )
        .await,
        Ok(1)
    );
    assert_eq!(
        attempt(
            &s.pool,
            s.a,
            admin,
            "insert into invitations (org_id, email, role, token_hash, expires_at)
             values ($1, 'helper@people.example', 'agent', $2, now() + interval '1 day')",
            &[&s.a, &random_hash()],
        )
        .await,
        Ok(1)
    );
    // And the owner may do what the admin may not.
    assert_eq!(
        attempt(
            &s.pool,
            s.a,
            Role::Owner,
            "update memberships set role = 'owner' where user_id = $1",
            &[&agent_member],
        )
        .await,
        Ok(1)
    );
}

#[tokio::test]
async fn a_viewer_cannot_write_tickets_comments_or_workspaces_even_in_raw_sql() {
    let s = seeded().await;
    let admin = s.db.admin().await;
    let (ws, ticket): (Uuid, Uuid) = admin
        .query_one(
            "select workspace_id, id from tickets where org_id = $1 limit 1",
            &[&s.a],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    let viewer = Role::Viewer;
    refused(
        attempt(
            &s.pool,
            s.a,
            viewer,
            "insert into tickets (org_id, workspace_id, title) values ($1, $2, 'Viewer ticket')",
            &[&s.a, &ws],
        )
        .await,
        "a viewer creating a ticket",
    );
    refused(
        attempt(
            &s.pool,
            s.a,
            viewer,
            "insert into ticket_comments (org_id, ticket_id, body) values ($1, $2, 'Viewer note')",
            &[&s.a, &ticket],
        )
        .await,
        "a viewer commenting",
    );
    refused(
        attempt(
            &s.pool,
            s.a,
            viewer,
            "insert into workspaces (org_id, name) values ($1, 'Viewer desk')",
            &[&s.a],
        )
        .await,
        "a viewer creating a workspace",
    );
    for sql in [
        "update tickets set title = 'pwned'",
        "delete from tickets",
        "update ticket_comments set body = 'pwned'",
        "delete from ticket_comments",
    ] {
        assert_eq!(
            attempt(&s.pool, s.a, viewer, sql, &[]).await,
            Ok(0),
            "a viewer: {sql}"
        );
    }
    let tickets = admin_count(
        &admin,
        "select count(*) from tickets where org_id = $1 and title <> 'pwned'",
        &[&s.a],
    )
    .await;
    assert_eq!(
        count_as(&s.pool, s.a, viewer, "select count(*) from tickets").await,
        tickets,
        "a viewer reads every ticket, and none was changed"
    );
    let pwned = admin_count(
        &admin,
        "select count(*) from ticket_comments where body = 'pwned'",
        &[],
    )
    .await;
    assert_eq!(pwned, 0);
}

#[tokio::test]
async fn the_runtime_role_cannot_read_api_key_or_invitation_secret_hashes() {
    let s = seeded().await;
    let hash = random_hash();
    for sql in [
        "select secret_hash from api_keys",
        "select * from api_keys",
        "select count(*) from api_keys where secret_hash = $1",
        "select token_hash from invitations",
        "select * from invitations",
        "select count(*) from invitations where token_hash = $1",
        "update api_keys set secret_hash = $1",
        "insert into api_keys (org_id, name, role, prefix, secret_hash)
         select org_id, 'copy', 'admin', 'dg_copy', $1 from api_keys returning secret_hash",
    ] {
        let params: Vec<&(dyn ToSql + Sync)> = if sql.contains("$1") {
            vec![&hash]
        } else {
            vec![]
        };
        let tx = trusted_tx(&s.pool, Some(s.a), Some(Role::Owner), Access::ReadWrite).await;
        let err = tx
            .query(sql, &params)
            .await
            .expect_err(&format!("the runtime role ran: {sql}"));
        assert_eq!(
            sql_state(&err),
            Some(SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err:?}"
        );
        tx.rollback().await.unwrap();
    }
    // The columns an owner needs stay readable.
    let tx = trusted_tx(&s.pool, Some(s.a), Some(Role::Owner), Access::ReadOnly).await;
    let keys = tx
        .query("select id, prefix, role from api_keys", &[])
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let invitations = tx
        .query("select id, email from invitations", &[])
        .await
        .unwrap();
    assert!(!invitations.is_empty());
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn resolving_an_api_key_finds_active_keys_and_nothing_for_revoked_or_unknown_ones() {
    let s = seeded().await;
    let secret = format!("dg_test_{}", Uuid::new_v4().simple());
    let hash = deskgraph::identity::auth::hash_secret(&secret);
    let tx = trusted_tx(&s.pool, Some(s.a), Some(Role::Admin), Access::ReadWrite).await;
    let key: Uuid = tx
        .query_one(
            "insert into api_keys (org_id, name, role, prefix, secret_hash)
             values ($1, 'exporter', 'agent', 'dg_test', $2) returning id",
            &[&s.a, &hash],
        )
        .await
        .unwrap()
        .get(0);
    tx.commit().await.unwrap();

    // As the runtime role with no context at all: the function is the one way to find a key.
    let plain = s.pool.get().await.unwrap();
    let resolve = "select api_key_id, org_id, role from auth_private.authenticate_api_key($1)";
    let rows = plain.query(resolve, &[&hash]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, Uuid>(0), key);
    assert_eq!(rows[0].get::<_, Uuid>(1), s.a);
    assert_eq!(rows[0].get::<_, String>(2), "agent");
    assert!(
        plain
            .query(resolve, &[&random_hash()])
            .await
            .unwrap()
            .is_empty()
    );
    drop(plain);

    let tx = trusted_tx(&s.pool, Some(s.a), Some(Role::Admin), Access::ReadWrite).await;
    let n = tx
        .execute(
            "update api_keys set revoked_at = now() where id = $1",
            &[&key],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    tx.commit().await.unwrap();

    let plain = s.pool.get().await.unwrap();
    let rows = plain.query(resolve, &[&hash]).await.unwrap();
    assert!(rows.is_empty(), "a revoked key still resolves");
    drop(plain);
    // And the server's own path: a revoked key opens a transaction with no context.
    let tx = TenantTx::begin(
        &s.pool,
        &Credentials::ApiKey {
            secret_hash: hash,
            org_id: None,
        },
        TxOptions::new(Access::ReadOnly, 10_000),
    )
    .await
    .unwrap();
    assert_eq!(tx.context(), deskgraph::db::TenantContext::default());
    let tickets: i64 = tx
        .query_one("select count(*) from tickets", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tickets, 0);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn the_runtime_role_can_execute_only_the_granted_auth_private_functions() {
    let db = TestDb::new().await;
    let admin = db.admin().await;
    let executable: BTreeSet<String> = admin
        .query(
            "select p.oid::regprocedure::text from pg_proc p
              where p.pronamespace = 'auth_private'::regnamespace
                and has_function_privilege($1, p.oid, 'execute')",
            &[&APP_ROLE],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let allowed: BTreeSet<String> = [
        "auth_private.accept_invitation(bytea,text)",
        "auth_private.authenticate_api_key(bytea)",
        "auth_private.authenticate_user(text,text,text,uuid)",
        "auth_private.can_add_member(uuid)",
        "auth_private.claim_jobs(text,text[],integer,integer)",
        "auth_private.extend_job_leases(text,uuid[],integer)",
        "auth_private.instance_heartbeat(uuid,integer)",
        "auth_private.instance_leave(uuid)",
        "auth_private.organizations_due_allowance(uuid,integer)",
        "auth_private.prune_jobs(integer,integer)",
        "auth_private.release_jobs(text,uuid[],integer[])",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(
        executable, allowed,
        "the runtime role may execute exactly the reviewed auth_private functions \
         (a new one needs `revoke all ... from public` and a review)"
    );
    let readable: Vec<String> = admin
        .query(
            "select c.oid::regclass::text from pg_class c
              where c.relnamespace = 'auth_private'::regnamespace
                and has_table_privilege($1, c.oid, 'select, insert, update, delete, truncate, references, trigger')",
            &[&APP_ROLE],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        readable.is_empty(),
        "runtime role has privileges on {readable:?}"
    );
    let can_create: bool = admin
        .query_one(
            "select has_schema_privilege($1, 'auth_private', 'create')
                 or has_schema_privilege($1, 'app', 'create')
                 or has_schema_privilege($1, 'public', 'create')",
            &[&APP_ROLE],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        !can_create,
        "the runtime role can create objects in a schema"
    );

    // A table the owner keeps in auth_private stays closed to the runtime role.
    admin
        .batch_execute(
            "create table auth_private.vault (secret text);
             insert into auth_private.vault values ('keep out');",
        )
        .await
        .unwrap();
    let pool = db.runtime_pool(1);
    let plain = pool.get().await.unwrap();
    for sql in [
        "select * from auth_private.vault",
        "create function auth_private.mine() returns int language sql as 'select 1'",
        "create table auth_private.mine (x int)",
        "create table public.mine (x int)",
    ] {
        let err = plain
            .batch_execute(sql)
            .await
            .expect_err(&format!("the runtime role ran: {sql}"));
        assert_eq!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err}"
        );
    }
}

#[tokio::test]
async fn every_security_definer_function_lives_in_auth_private_with_a_fixed_search_path() {
    let db = TestDb::new().await;
    let admin = db.admin().await;
    let rows = admin
        .query(
            "select p.oid::regprocedure::text, n.nspname::text, coalesce(p.proconfig, '{}'),
                    p.prorettype = 'trigger'::regtype
               from pg_proc p join pg_namespace n on n.oid = p.pronamespace
              where p.prosecdef and n.nspname not in ('pg_catalog', 'information_schema')
              order by 1",
            &[],
        )
        .await
        .unwrap();
    assert!(
        rows.len() >= 3,
        "expected the auth_private functions to be SECURITY DEFINER"
    );
    // Trigger functions cannot be called directly; they live in `internal`, which the runtime role
    // cannot even see.
    let internal_usage: bool = admin
        .query_one(
            "select has_schema_privilege($1, 'internal', 'usage')",
            &[&APP_ROLE],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        !internal_usage,
        "the runtime role must not use schema internal"
    );
    for row in rows {
        let (name, schema, config, is_trigger): (String, String, Vec<String>, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        assert!(
            schema == "auth_private" || (schema == "internal" && is_trigger),
            "{name} is SECURITY DEFINER outside auth_private (or, for trigger functions, internal)"
        );
        let path = config
            .iter()
            .find_map(|c| c.strip_prefix("search_path="))
            .unwrap_or_else(|| panic!("{name} has no fixed search_path: {config:?}"));
        let schemas: Vec<&str> = path.split(',').map(str::trim).collect();
        assert!(
            !schemas
                .iter()
                .any(|s| *s == "public" || s.contains("$user")),
            "{name}: search_path {path:?} includes a schema others can write to"
        );
        assert_eq!(
            schemas.last(),
            Some(&"pg_temp"),
            "{name}: pg_temp must come last in {path:?}, or it is searched first"
        );
    }
}

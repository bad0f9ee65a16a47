//! The catalog test (DESIGN §2 rules 1 and 2): on the migrated schema, every table with an `org_id`
//! column has row level security enabled and forced, the org isolation policy, and `org_id` leading
//! an index; the runtime role cannot bypass any of it. Each check is also shown to fail on a table or
//! role built to break it, so a passing run means something.

// Helpers here are test code too: a failed unwrap is a failed test with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deskgraph::db::safety::{
    AUDIT_TABLES, check_runtime_role, unaudited_tenant_tables, unprotected_tenant_tables,
};
use tokio_postgres::Client;

use crate::common::{APP_ROLE, TestDb, TestRole, db_url};

/// Tables the migrations create with an `org_id` column; the catalog must list at least these.
const KNOWN_TENANT_TABLES: &[&str] = &[
    "api_keys",
    "audit_heads",
    "audit_log",
    "credit_balances",
    "credit_ledger",
    "invitations",
    "jobs",
    "memberships",
    "ticket_analyses",
    "ticket_comments",
    "ticket_counters",
    "tickets",
    "workspaces",
];

/// The isolation expression of rule 1, as PostgreSQL prints it back.
const ORG_CHECK: &str = "(org_id = ( SELECT app.current_org_id() AS current_org_id))";

/// Permissive policies that deliberately do not filter on the current organization, each reviewed:
/// permissive policies are OR-ed, so every one of them widens what a tenant sees.
const REVIEWED_PERMISSIVE: &[(&str, &str)] = &[
    // A user sees their own memberships in every organization (the organization picker); the test
    // `a_member_of_two_organizations_sees_only_their_own_membership_of_the_other_one` pins it down.
    ("memberships", "memberships_own_read"),
];

/// Every ordinary or partitioned table, outside the system schemas, with an `org_id` column.
async fn tenant_tables(client: &Client) -> Vec<String> {
    client
        .query(
            "select c.oid::regclass::text from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p')
                and n.nspname not in ('pg_catalog', 'information_schema')
                and n.nspname not like 'pg\\_%'
                and exists (select 1 from pg_attribute a
                             where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped)
              order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn normalize(expr: &str) -> String {
    expr.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Tenant tables whose policies break rule 1: no permissive all-commands policy that is exactly the
/// org check for both USING and WITH CHECK, or a permissive policy (not reviewed) that does not
/// filter on the current organization.
async fn policy_violations(client: &Client) -> Vec<String> {
    let mut violations = vec![];
    for table in tenant_tables(client).await {
        let policies = client
            .query(
                "select polname::text, polpermissive, polcmd::text,
                        pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)
                   from pg_policy where polrelid = $1::text::regclass order by 1",
                &[&table],
            )
            .await
            .unwrap();
        let mut isolated = false;
        for p in &policies {
            let (name, permissive, cmd): (String, bool, String) = (p.get(0), p.get(1), p.get(2));
            let qual: Option<String> = p.get::<_, Option<String>>(3).map(|e| normalize(&e));
            let check: Option<String> = p.get::<_, Option<String>>(4).map(|e| normalize(&e));
            if !permissive {
                continue;
            }
            if cmd == "*"
                && qual.as_deref() == Some(ORG_CHECK)
                && check.as_deref() == Some(ORG_CHECK)
            {
                isolated = true;
                continue;
            }
            let reviewed = REVIEWED_PERMISSIVE
                .iter()
                .any(|(t, n)| *t == table && *n == name);
            let exprs: Vec<&String> = [&qual, &check].into_iter().flatten().collect();
            let filters_org =
                !exprs.is_empty() && exprs.iter().all(|e| e.contains("app.current_org_id()"));
            if !reviewed && !filters_org {
                violations.push(format!(
                    "{table}: permissive policy {name} ignores the organization: using {qual:?} with check {check:?}"
                ));
            }
        }
        if !isolated {
            violations.push(format!(
                "{table}: no policy `using {ORG_CHECK} with check {ORG_CHECK}`"
            ));
        }
    }
    violations
}

/// Tenant tables where `org_id` is not `uuid not null` leading the primary key or a valid index.
async fn key_violations(client: &Client) -> Vec<String> {
    client
        .query(
            "select c.oid::regclass::text,
                    format_type(a.atttypid, a.atttypmod), a.attnotnull,
                    exists (select 1 from pg_index i
                             where i.indrelid = c.oid and i.indisvalid and i.indkey[0] = a.attnum)
               from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
               join pg_attribute a on a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped
              where c.relkind in ('r', 'p')
                and n.nspname not in ('pg_catalog', 'information_schema')
                and n.nspname not like 'pg\\_%'
              order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .filter_map(|r| {
            let (table, ty, not_null, leads): (String, String, bool, bool) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            (ty != "uuid" || !not_null || !leads).then(|| {
                format!("{table}: org_id is {ty}, not null = {not_null}, leads an index = {leads}")
            })
        })
        .collect()
}

#[tokio::test]
async fn every_table_with_an_org_id_column_forces_row_level_security_and_has_a_policy() {
    let db = TestDb::new().await;
    let admin = db.admin().await;
    let tables = tenant_tables(&admin).await;
    for known in KNOWN_TENANT_TABLES {
        assert!(
            tables.iter().any(|t| t == known),
            "{known} is not found as a tenant table: {tables:?}"
        );
    }
    let unprotected = unprotected_tenant_tables(&admin).await.unwrap();
    assert!(
        unprotected.is_empty(),
        "tenant tables without forced RLS or a policy: {unprotected:?}"
    );
    // The two tables keyed by the tenant itself (no org_id column) are under forced RLS as well.
    for table in ["organizations", "users"] {
        let row = admin
            .query_one(
                "select c.relrowsecurity, c.relforcerowsecurity,
                        exists (select 1 from pg_policy p where p.polrelid = c.oid)
                   from pg_class c where c.oid = $1::text::regclass",
                &[&table],
            )
            .await
            .unwrap();
        let flags: (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(flags, (true, true, true), "{table}");
    }
    // The same answer through the runtime role, which is what the server asks at start-up.
    let pool = db.runtime_pool(1);
    let runtime = pool.get().await.unwrap();
    assert!(
        unprotected_tenant_tables(&runtime)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn every_tenant_table_isolates_on_the_current_organization_setting() {
    let db = TestDb::new().await;
    let admin = db.admin().await;
    let violations = policy_violations(&admin).await;
    assert!(violations.is_empty(), "{violations:#?}");
    // The reviewed exceptions still exist; drop them from the list when they go.
    for (table, name) in REVIEWED_PERMISSIVE {
        let n: i64 = admin
            .query_one(
                "select count(*) from pg_policies where tablename = $1 and policyname = $2",
                &[table, name],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "stale review entry {table}.{name}");
    }
    // The setting behind the policy is `app.org_id`, read transaction-safely.
    let body: String = admin
        .query_one(
            "select prosrc from pg_proc where oid = 'app.current_org_id()'::regprocedure",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        body.contains("current_setting('app.org_id', true)"),
        "app.current_org_id() no longer reads app.org_id: {body}"
    );
}

#[tokio::test]
async fn org_id_is_a_non_null_uuid_leading_an_index_of_every_tenant_table() {
    let db = TestDb::new().await;
    let admin = db.admin().await;
    let violations = key_violations(&admin).await;
    assert!(violations.is_empty(), "{violations:#?}");
}

#[tokio::test]
async fn the_runtime_role_is_not_superuser_cannot_bypass_rls_and_owns_nothing() {
    let db = TestDb::new().await;
    check_runtime_role(&db.runtime_pool(1))
        .await
        .expect("the runtime role passes the start-up check");
    let admin = db.admin().await;
    for (role, login) in [(APP_ROLE, true), ("deskgraph_api", false)] {
        let row = admin
            .query_one(
                "select rolsuper, rolbypassrls, rolcanlogin, rolcreaterole, rolcreatedb
                   from pg_roles where rolname = $1",
                &[&role],
            )
            .await
            .unwrap();
        let flags: (bool, bool, bool, bool, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        assert_eq!(flags, (false, false, login, false, false), "{role}");
    }
    let owned: Vec<String> = admin
        .query(
            "select 'relation ' || c.oid::regclass::text from pg_class c
              where pg_has_role($1, c.relowner, 'MEMBER')
             union all
             select 'function ' || p.oid::regprocedure::text from pg_proc p
              where pg_has_role($1, p.proowner, 'MEMBER')
             union all
             select 'schema ' || n.nspname::text from pg_namespace n
              where pg_has_role($1, n.nspowner, 'MEMBER')
             union all
             select 'type ' || t.oid::regtype::text from pg_type t
              where pg_has_role($1, t.typowner, 'MEMBER')",
            &[&APP_ROLE],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(owned.is_empty(), "the runtime role owns {owned:?}");
}

#[tokio::test]
async fn the_catalog_checks_name_a_tenant_table_until_it_is_fully_protected() {
    let db = TestDb::new().await;
    let admin = db.admin().await;
    let runtime = db.runtime_pool(1);
    admin
        .batch_execute(
            "create table x (org_id uuid);
             create schema elsewhere;
             create table elsewhere.y (id int primary key, org_id uuid not null);",
        )
        .await
        .unwrap();
    assert_eq!(
        unprotected_tenant_tables(&admin).await.unwrap(),
        ["elsewhere.y", "x"]
    );
    let err = check_runtime_role(&runtime).await.unwrap_err().to_string();
    assert!(err.contains("elsewhere.y, x"), "{err}");
    let keys = key_violations(&admin).await;
    assert_eq!(keys.len(), 2, "{keys:#?}");
    assert!(
        keys[0].starts_with("elsewhere.y:") && keys[1].starts_with("x:"),
        "{keys:#?}"
    );

    // Each missing piece keeps x on the list: enabled is not enough, forced is not enough.
    admin
        .batch_execute("alter table x enable row level security")
        .await
        .unwrap();
    assert!(
        unprotected_tenant_tables(&admin)
            .await
            .unwrap()
            .contains(&"x".into())
    );
    admin
        .batch_execute("alter table x force row level security")
        .await
        .unwrap();
    assert!(
        unprotected_tenant_tables(&admin)
            .await
            .unwrap()
            .contains(&"x".into())
    );
    // A policy that does not filter on the organization satisfies the flags but not rule 1.
    admin
        .batch_execute("create policy anything_goes on x using (true)")
        .await
        .unwrap();
    assert!(
        !unprotected_tenant_tables(&admin)
            .await
            .unwrap()
            .contains(&"x".into())
    );
    let policies = policy_violations(&admin).await;
    assert!(
        policies
            .iter()
            .any(|v| v.starts_with("x: permissive policy anything_goes")),
        "{policies:#?}"
    );
    assert!(
        policies.iter().any(|v| v.starts_with("x: no policy")),
        "{policies:#?}"
    );

    // Fixed: the isolation policy, the unsafe policy gone, org_id not null and leading an index.
    admin
        .batch_execute(
            "drop policy anything_goes on x;
             create policy tenant_isolation on x
                 using (org_id = (select app.current_org_id()))
                 with check (org_id = (select app.current_org_id()));
             alter table x alter column org_id set not null;
             create index x_org_idx on x (org_id);
             drop schema elsewhere cascade;",
        )
        .await
        .unwrap();
    assert!(unprotected_tenant_tables(&admin).await.unwrap().is_empty());
    // Protected but not yet audited: the server still refuses; the audit trigger fixes that.
    assert!(check_runtime_role(&runtime).await.is_err());
    admin
        .batch_execute(
            "create trigger audit after insert or update or delete on x
                 for each row execute function internal.audit_row('org_id', 'org_id');
             create trigger lock_org before insert or update or delete on x
                 for each statement execute function internal.lock_current_org()",
        )
        .await
        .unwrap();
    let policies = policy_violations(&admin).await;
    assert!(policies.is_empty(), "{policies:#?}");
    let keys = key_violations(&admin).await;
    assert!(keys.is_empty(), "{keys:#?}");
    check_runtime_role(&runtime)
        .await
        .expect("all tables are protected again");
}

#[tokio::test]
async fn the_start_up_check_refuses_a_superuser_connection() {
    let db = TestDb::new().await;
    let superuser = deskgraph::db::pool_for(&db.admin_url, 1).unwrap();
    let err = check_runtime_role(&superuser)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("superuser"), "{err}");
    assert!(err.contains("refusing to start"), "{err}");
}

#[tokio::test]
async fn the_start_up_check_refuses_a_role_that_inherits_bypassrls_or_owns_a_table() {
    let db = TestDb::new().await;
    let bypass_group = TestRole::create("deskgraph_test_bypass", "nologin bypassrls").await;
    let member = TestRole::create(
        "deskgraph_test_member",
        &format!(
            "login nosuperuser nobypassrls in role {}",
            bypass_group.name
        ),
    )
    .await;
    let pool = deskgraph::db::pool_for(&db_url(&member.name, None, &db.name), 1).unwrap();
    let err = check_runtime_role(&pool).await.unwrap_err().to_string();
    assert!(err.contains("bypass row level security"), "{err}");
    drop(pool);

    let owner = TestRole::create("deskgraph_test_owner", "login nosuperuser nobypassrls")
        .await
        .owning_in(&db.name);
    let admin = db.admin().await;
    admin
        .batch_execute(&format!(
            "create table owned_here (id int); alter table owned_here owner to {}",
            owner.name
        ))
        .await
        .unwrap();
    let pool = deskgraph::db::pool_for(&db_url(&owner.name, None, &db.name), 1).unwrap();
    let err = check_runtime_role(&pool).await.unwrap_err().to_string();
    assert!(err.contains("owns tables (owned_here)"), "{err}");
}

#[tokio::test]
async fn every_tenant_table_has_an_audit_trigger() {
    let db = TestDb::new().await;
    let admin = db.admin().await;
    let unaudited = unaudited_tenant_tables(&admin).await.unwrap();
    assert!(
        unaudited.is_empty(),
        "tenant tables without an audit trigger: {unaudited:?}"
    );
    // Every tenant table but the trail's own is covered, organizations included.
    let audited: Vec<String> = admin
        .query(
            "select distinct t.tgrelid::regclass::text from pg_trigger t
              where t.tgfoid = 'internal.audit_row()'::regprocedure order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected: Vec<String> = tenant_tables(&admin)
        .await
        .into_iter()
        .filter(|t| !AUDIT_TABLES.contains(&t.as_str()))
        .chain(["organizations".to_owned()])
        .collect();
    expected.sort();
    assert_eq!(audited, expected);
    // And every one of them takes the organization's write lock before its write statements.
    let locking: Vec<String> = admin
        .query(
            "select distinct t.tgrelid::regclass::text from pg_trigger t
              where t.tgfoid = 'internal.lock_current_org()'::regprocedure order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(locking, expected);

    // The check can fail: a new tenant table without the trigger is named, and so is a disabled one.
    admin
        .batch_execute(
            "create table scratch_notes (org_id uuid not null, id uuid not null, primary key (org_id, id));
             alter table scratch_notes enable row level security;
             alter table scratch_notes force row level security;
             create policy tenant_isolation on scratch_notes using (org_id = (select app.current_org_id()));
             alter table tickets disable trigger audit;",
        )
        .await
        .unwrap();
    assert_eq!(
        unaudited_tenant_tables(&admin).await.unwrap(),
        vec!["scratch_notes".to_owned(), "tickets".to_owned()]
    );
    // And the server refuses to start on such a database.
    let err = check_runtime_role(&db.runtime_pool(1)).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("audit trigger"),
        "unexpected refusal: {err:#}"
    );
}

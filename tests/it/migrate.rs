//! `deskgraph migrate` on brand-new databases: concurrent runs apply each migration once, the runtime
//! role comes out unable to bypass RLS, `run` creates a missing database, and an owner role that could
//! not run the SECURITY DEFINER functions across tenants is refused up front.

// Helpers here are test code too: a failed unwrap is a failed test with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deskgraph::config::DbConfig;
use deskgraph::db::migrate::{self, MigrationReport, embedded_migrations};
use uuid::Uuid;

use crate::common::{TestRole, admin_client, admin_db_url, db_url};

/// A database made (or expected to be made) by one test, dropped with its connections at the end,
/// whether the test passed or not.
struct ScratchDb {
    name: String,
}

impl ScratchDb {
    /// A fresh name; the database is not created.
    fn named() -> Self {
        Self {
            name: format!("deskgraph_mig_{}", Uuid::new_v4().simple()),
        }
    }

    async fn create() -> Self {
        let db = Self::named();
        admin_client("postgres")
            .await
            .batch_execute(&format!("create database {}", db.name))
            .await
            .unwrap();
        db
    }

    fn admin_url(&self) -> String {
        admin_db_url(&self.name)
    }

    async fn exists(&self) -> bool {
        admin_client("postgres")
            .await
            .query_opt(
                "select 1 from pg_database where datname = $1",
                &[&self.name],
            )
            .await
            .unwrap()
            .is_some()
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        crate::common::drop_database_blocking(&self.name);
    }
}

fn random_app_role() -> String {
    format!(
        "deskgraph_test_app_{}",
        &Uuid::new_v4().simple().to_string()[..12]
    )
}

/// `(rows, distinct versions)` of refinery's history table.
async fn history(db: &ScratchDb) -> (i64, i64) {
    let row = admin_client(&db.name)
        .await
        .query_one(
            "select count(*), count(distinct version) from refinery_schema_history",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// `(superuser, bypassrls, login, uses deskgraph_api's privileges)` of a role.
async fn role_flags(role: &str) -> (bool, bool, bool, bool) {
    let row = admin_client("postgres")
        .await
        .query_one(
            "select rolsuper, rolbypassrls, rolcanlogin, pg_has_role(rolname, $2, 'USAGE')
               from pg_roles where rolname = $1",
            &[&role, &migrate::API_GROUP_ROLE],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test]
async fn two_concurrent_migrations_of_a_new_database_both_succeed_and_apply_each_migration_once() {
    let db = ScratchDb::create().await;
    let role = TestRole::adopt(&random_app_role()).owning_in(&db.name);
    let spawn_migrate = || {
        let (url, role) = (db.admin_url(), role.name.clone());
        tokio::spawn(async move {
            let mut client = migrate::connect(&url).await?;
            migrate::migrate_client(&mut client, &role, "").await
        })
    };
    let (first, second) = (spawn_migrate(), spawn_migrate());
    let first: MigrationReport = first.await.unwrap().expect("the first migrator succeeds");
    let second: MigrationReport = second.await.unwrap().expect("the second migrator succeeds");

    let embedded = embedded_migrations();
    assert!(!embedded.is_empty());
    let mut applied: Vec<String> = first
        .applied
        .iter()
        .chain(&second.applied)
        .cloned()
        .collect();
    applied.sort();
    let mut expected = embedded.clone();
    expected.sort();
    assert_eq!(
        applied, expected,
        "each migration is applied by exactly one of the two"
    );
    assert!(
        first.applied.is_empty() || second.applied.is_empty(),
        "the advisory lock lets one migrator do all the work: {first:?} {second:?}"
    );
    assert_eq!(
        [first.created_role, second.created_role]
            .iter()
            .filter(|c| **c)
            .count(),
        1,
        "exactly one run creates the runtime role"
    );
    let n = embedded.len() as i64;
    assert_eq!(history(&db).await, (n, n), "one history row per migration");
    assert_eq!(
        role_flags(&role.name).await,
        (false, false, true, true),
        "the runtime role is NOSUPERUSER NOBYPASSRLS LOGIN and a member of deskgraph_api"
    );

    let mut client = migrate::connect(&db.admin_url()).await.unwrap();
    let third = migrate::migrate_client(&mut client, &role.name, "")
        .await
        .unwrap();
    assert!(
        third.applied.is_empty(),
        "a third run applied {:?}",
        third.applied
    );
    assert!(!third.created_role);
    assert_eq!(history(&db).await, (n, n));
    drop(client);

    // The result is a schema the server agrees to run on, as that role.
    let pool = deskgraph::db::pool_for(&db_url(&role.name, None, &db.name), 1).unwrap();
    deskgraph::db::safety::check_runtime_role(&pool)
        .await
        .expect("the migrated database passes the start-up check");
}

#[tokio::test]
async fn migrate_run_creates_a_missing_database_and_is_idempotent() {
    let db = ScratchDb::named();
    let role = TestRole::adopt(&random_app_role()).owning_in(&db.name);
    assert!(!db.exists().await);
    let cfg = DbConfig {
        database_url: db_url(&role.name, None, &db.name).into(),
        database_listen_url: "".into(),
        database_admin_url: db.admin_url().into(),
        app_role: role.name.clone(),
        app_password: Default::default(),
        pool_size: 2,
        statement_timeout_ms: 10_000,
        prepared_statements: true,
    };
    let report = migrate::run(&cfg)
        .await
        .expect("migrate creates and migrates");
    assert!(report.created_database);
    assert!(db.exists().await);
    assert_eq!(report.applied, embedded_migrations());
    assert!(report.created_role);
    assert_eq!(role_flags(&role.name).await, (false, false, true, true));

    let again = migrate::run(&cfg).await.unwrap();
    assert!(!again.created_database);
    assert!(again.applied.is_empty(), "{:?}", again.applied);
    assert!(!again.created_role);

    let pool = deskgraph::db::runtime_pool(&cfg).unwrap();
    deskgraph::db::safety::check_runtime_role(&pool)
        .await
        .expect("the runtime role of a fresh install passes the start-up check");
}

#[tokio::test]
async fn migrating_as_a_role_without_bypassrls_fails_with_a_clear_message_and_changes_nothing() {
    let db = ScratchDb::create().await;
    let app_role = random_app_role();
    for attributes in [
        "login nosuperuser nobypassrls createrole",
        "login nosuperuser bypassrls nocreaterole",
    ] {
        let weak = TestRole::create("deskgraph_test_weak", attributes)
            .await
            .owning_in(&db.name);
        let url = db_url(&weak.name, None, &db.name);
        let mut client = migrate::connect(&url)
            .await
            .expect("the weak role can log in");
        let err = migrate::migrate_client(&mut client, &app_role, "")
            .await
            .expect_err("a role that cannot bypass RLS must not own the schema");
        let text = format!("{err:#}");
        assert!(text.contains("BYPASSRLS"), "{attributes}: {text}");
        assert!(text.contains("DATABASE_ADMIN_URL"), "{attributes}: {text}");
        drop(client);

        // The command, too, with the weak role as DATABASE_ADMIN_URL.
        let cfg = DbConfig {
            database_url: url.clone().into(),
            database_listen_url: "".into(),
            database_admin_url: url.into(),
            app_role: app_role.clone(),
            app_password: Default::default(),
            pool_size: 1,
            statement_timeout_ms: 10_000,
            prepared_statements: true,
        };
        let err = migrate::run(&cfg).await.expect_err("run refuses as well");
        assert!(format!("{err:#}").contains("BYPASSRLS"), "{err:#}");
    }

    // Refused before touching anything: no history table, no schema, no runtime role.
    let admin = admin_client(&db.name).await;
    let row = admin
        .query_one(
            "select to_regclass('public.refinery_schema_history') is null,
                    not exists (select 1 from pg_namespace where nspname in ('app', 'auth_private')),
                    not exists (select 1 from pg_roles where rolname = $1)",
            &[&app_role],
        )
        .await
        .unwrap();
    let untouched: (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(untouched, (true, true, true));
}

//! `deskgraph migrate`: creates the database if it is missing, applies the embedded refinery
//! migrations as the owner role, and creates the runtime LOGIN role. Idempotent, and safe to run from
//! several processes at once (a PostgreSQL advisory lock serialises them).

use anyhow::{Context as _, bail};
use tokio_postgres::Client;

use super::tls::Target;
use crate::config::DbConfig;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The NOLOGIN group role that migrations grant the runtime privileges to.
pub const API_GROUP_ROLE: &str = "deskgraph_api";

/// Advisory-lock key held while migrating (any constant; it only has to be shared by all migrators).
const MIGRATION_LOCK_KEY: i64 = 0x6465_736b_6772_6170; // "deskgrap"

/// What `migrate` did, for logs and tests.
#[derive(Debug, Default)]
pub struct MigrationReport {
    pub created_database: bool,
    pub applied: Vec<String>,
    pub created_role: bool,
}

/// Connects to `url`, an owner connection string (`DATABASE_ADMIN_URL`).
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    connect_target(&Target::from_url(url, "DATABASE_ADMIN_URL")?).await
}

async fn connect_target(target: &Target) -> anyhow::Result<Client> {
    let (client, connection) = target
        .connect()
        .await
        .with_context(|| target.connect_failed())?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "admin connection ended with an error");
        }
    });
    // Idempotent DDL answers with NOTICEs (refinery's `create table if not exists` of its history,
    // `grant` of a role already granted), which tokio-postgres logs at INFO on every run: they say
    // nothing an operator acts on. Warnings still come through.
    client
        .batch_execute("set client_min_messages = warning")
        .await
        .with_context(|| format!("{}: failed to set client_min_messages", target.describe()))?;
    Ok(client)
}

/// Creates the database named in `url` when it does not exist, connecting to the `postgres`
/// maintenance database of the same server to do so. Returns whether it created it.
pub async fn ensure_database(url: &str) -> anyhow::Result<bool> {
    let target = Target::from_url(url, "DATABASE_ADMIN_URL")?;
    let Some(dbname) = target.config().get_dbname().map(str::to_owned) else {
        return Ok(false);
    };
    match connect_target(&target).await {
        Ok(_) => return Ok(false),
        Err(err) => {
            let missing = err
                .chain()
                .find_map(|e| e.downcast_ref::<tokio_postgres::Error>())
                .and_then(|e| e.code())
                .is_some_and(|c| *c == tokio_postgres::error::SqlState::INVALID_CATALOG_NAME);
            if !missing {
                return Err(err);
            }
        }
    }
    let mut maintenance = target.clone();
    maintenance.config_mut().dbname("postgres");
    let client = connect_target(&maintenance).await?;
    let sql = format!("create database {}", quote_ident(&dbname));
    match client.batch_execute(&sql).await {
        Ok(()) => Ok(true),
        // Another process created it first.
        Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {
            Ok(false)
        }
        Err(err) => Err(err).context("failed to create the database"),
    }
}

/// Quotes an SQL identifier (role and database names cannot be bound as parameters).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal.
fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Runs the whole `migrate` command.
pub async fn run(cfg: &DbConfig) -> anyhow::Result<MigrationReport> {
    let created_database = ensure_database(cfg.database_admin_url.expose()).await?;
    let mut client = connect(cfg.database_admin_url.expose()).await?;
    let mut report = migrate_client(&mut client, &cfg.app_role, cfg.app_password.expose()).await?;
    report.created_database = created_database;
    Ok(report)
}

/// Applies migrations and creates the runtime role on an open owner connection.
pub async fn migrate_client(
    client: &mut Client,
    app_role: &str,
    app_password: &str,
) -> anyhow::Result<MigrationReport> {
    check_owner(client).await?;
    client
        .execute("select pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .context("failed to take the migration lock")?;
    let result = migrate_locked(client, app_role, app_password).await;
    // Released explicitly; the lock would also go with the session.
    let unlock = client
        .execute("select pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    let report = result?;
    unlock.context("failed to release the migration lock")?;
    Ok(report)
}

async fn migrate_locked(
    client: &mut Client,
    app_role: &str,
    app_password: &str,
) -> anyhow::Result<MigrationReport> {
    let applied = embedded::migrations::runner()
        .set_grouped(false)
        .run_async(client)
        .await
        .context("failed to apply migrations")?;
    let applied = applied
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect();
    let created_role = ensure_runtime_role(client, app_role, app_password).await?;
    Ok(MigrationReport {
        created_database: false,
        applied,
        created_role,
    })
}

/// The migration owner must be able to read across tenants, because the SECURITY DEFINER functions
/// that resolve callers run as it while tables force row level security.
async fn check_owner(client: &Client) -> anyhow::Result<()> {
    let row = client
        .query_one(
            "select rolsuper, rolbypassrls, rolcreaterole from pg_roles where rolname = current_user",
            &[],
        )
        .await
        .context("failed to inspect the migration role")?;
    let (superuser, bypass, createrole): (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
    if !(superuser || (bypass && createrole)) {
        bail!(
            "DATABASE_ADMIN_URL must log in as a superuser or as a role with BYPASSRLS and CREATEROLE: \
             it owns the tables and the SECURITY DEFINER functions that resolve callers across tenants"
        );
    }
    Ok(())
}

/// Creates the runtime LOGIN role if missing (NOSUPERUSER, NOBYPASSRLS, owning nothing) and makes it a
/// member of the API group role. Sets its password when one is configured.
async fn ensure_runtime_role(client: &Client, role: &str, password: &str) -> anyhow::Result<bool> {
    if role.is_empty() || role == API_GROUP_ROLE {
        bail!("DESKGRAPH_APP_ROLE must name a login role other than {API_GROUP_ROLE}");
    }
    let exists = client
        .query_opt("select 1 from pg_roles where rolname = $1", &[&role])
        .await
        .context("failed to look up the runtime role")?
        .is_some();
    let ident = quote_ident(role);
    let mut created = false;
    if !exists {
        let sql = format!(
            "create role {ident} login nosuperuser nobypassrls nocreatedb nocreaterole inherit"
        );
        match client.batch_execute(&sql).await {
            Ok(()) => created = true,
            Err(err)
                if err.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT)
                    || err.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {}
            Err(err) => return Err(err).context("failed to create the runtime role"),
        }
    }
    client
        .batch_execute(&format!("grant {} to {ident}", quote_ident(API_GROUP_ROLE)))
        .await
        .context("failed to grant the API group role to the runtime role")?;
    if !password.is_empty() {
        client
            .batch_execute(&format!(
                "alter role {ident} password {}",
                quote_literal(password)
            ))
            .await
            .context("failed to set the runtime role's password")?;
    }
    Ok(created)
}

/// Names of the embedded migrations, in order (for docs and tests).
pub fn embedded_migrations() -> Vec<String> {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident(r#"we"ird"#), r#""we""ird""#);
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn migrations_are_embedded_in_order() {
        let names = embedded_migrations();
        assert!(
            names.first().is_some_and(|n| n.contains("core")),
            "{names:?}"
        );
    }
}

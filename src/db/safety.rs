//! Fail-closed start-up checks (DESIGN §2 rule 2): the server refuses to run when its database role
//! could bypass row level security, when a tenant table is not protected by it, or when a tenant
//! table's writes would escape the audit trail.

use crate::db::Pool;
use anyhow::{Context as _, bail};

/// Inspects the runtime role and the catalog through a runtime connection.
pub async fn check_runtime_role(pool: &Pool) -> anyhow::Result<()> {
    let client = pool
        .get()
        .await
        .with_context(|| format!("{} (the runtime role)", pool.connect_failed()))?;
    // Statements outside a transaction go out as the unnamed statement (`query_typed`: one message,
    // one Sync), which a transaction-mode pooler cannot split across server connections.
    let rows = client
        .query_typed(
            "select current_user::text,
                    r.rolsuper,
                    r.rolbypassrls,
                    exists (select 1 from pg_roles g
                             where pg_has_role(current_user, g.oid, 'MEMBER')
                               and (g.rolsuper or g.rolbypassrls)) as inherits_privilege,
                    array(select c.oid::regclass::text from pg_class c
                           join pg_namespace n on n.oid = c.relnamespace
                          where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
                            and c.relkind in ('r', 'p', 'v', 'm', 'S')
                            and pg_has_role(current_user, c.relowner, 'MEMBER')) as owned_tables
               from pg_roles r where r.rolname = current_user",
            &[],
        )
        .await
        .context("failed to inspect the runtime role")?;
    let row = rows
        .first()
        .context("the runtime role is not in pg_roles")?;
    let (name, superuser, bypass, inherits, owned): (String, bool, bool, bool, Vec<String>) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    if superuser || bypass || inherits {
        bail!(
            "refusing to start: the runtime role {name:?} (DATABASE_URL) is a superuser or can bypass row \
             level security; point DATABASE_URL at the application role created by `deskgraph migrate`"
        );
    }
    if !owned.is_empty() {
        bail!(
            "refusing to start: the runtime role {name:?} owns tables ({}); table owners are exempt from \
             some row level security checks — run migrations as a separate owner role",
            owned.join(", ")
        );
    }
    let unprotected = unprotected_tenant_tables(&client).await?;
    if !unprotected.is_empty() {
        bail!(
            "refusing to start: tenant tables without forced row level security or a policy: {}",
            unprotected.join(", ")
        );
    }
    let unaudited = unaudited_tenant_tables(&client).await?;
    if !unaudited.is_empty() {
        bail!(
            "refusing to start: tenant tables without an enabled audit trigger (and write-lock trigger): {}",
            unaudited.join(", ")
        );
    }
    Ok(())
}

/// Tenant tables without the audit and write-lock triggers: the audit trail's own tables (they are the
/// record, not recorded), and the job queue (bookkeeping claimed across organizations; what a job does
/// is audited where it happens — see `migrations/V4__ai_pipeline.sql`).
pub const AUDIT_TABLES: [&str; 3] = ["audit_log", "audit_heads", "jobs"];

/// Tenant tables (an `org_id` column, or `organizations` itself) without an enabled row-level AFTER
/// INSERT, UPDATE and DELETE trigger running `internal.audit_row`, or without the statement-level
/// BEFORE trigger taking the organization's write lock (`internal.lock_current_org`).
pub async fn unaudited_tenant_tables(
    client: &tokio_postgres::Client,
) -> anyhow::Result<Vec<String>> {
    // tgtype bits: 1 = row, 2 = before, 4 = insert, 8 = delete, 16 = update.
    let rows = client
        .query_typed(
            "select c.oid::regclass::text
               from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p')
                and n.nspname not in ('pg_catalog', 'information_schema')
                and (exists (select 1 from pg_attribute a
                              where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped)
                     or c.oid = 'public.organizations'::regclass)
                and not (c.oid::regclass::text = any($1))
                and (not exists (
                    select 1 from pg_trigger t
                      join pg_proc p on p.oid = t.tgfoid
                      join pg_namespace pn on pn.oid = p.pronamespace
                     where t.tgrelid = c.oid
                       -- by name: the runtime role cannot resolve names in schema internal
                       and pn.nspname = 'internal' and p.proname = 'audit_row'
                       and t.tgenabled <> 'D'
                       and t.tgtype & 1 = 1 and t.tgtype & 2 = 0 and t.tgtype & 28 = 28)
                    or not exists (
                    select 1 from pg_trigger t
                      join pg_proc p on p.oid = t.tgfoid
                      join pg_namespace pn on pn.oid = p.pronamespace
                     where t.tgrelid = c.oid
                       and pn.nspname = 'internal' and p.proname = 'lock_current_org'
                       and t.tgenabled <> 'D'
                       and t.tgtype & 1 = 0 and t.tgtype & 2 = 2 and t.tgtype & 28 = 28))
              order by 1",
            &[(&AUDIT_TABLES.as_slice(), tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await
        .context("failed to inspect the catalog")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Tables with an `org_id` column that lack ENABLE + FORCE ROW LEVEL SECURITY or any policy.
pub async fn unprotected_tenant_tables(
    client: &tokio_postgres::Client,
) -> anyhow::Result<Vec<String>> {
    let rows = client
        .query_typed(
            "select c.oid::regclass::text
               from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p')
                and n.nspname not in ('pg_catalog', 'information_schema')
                and exists (select 1 from pg_attribute a
                             where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped)
                and not (c.relrowsecurity and c.relforcerowsecurity
                         and exists (select 1 from pg_policy p where p.polrelid = c.oid))
              order by 1",
            &[],
        )
        .await
        .context("failed to inspect the catalog")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

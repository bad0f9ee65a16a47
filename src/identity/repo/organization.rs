//! Organizations: the current one, the caller's, and creating one with its owner.

use crate::db::TenantTx;
use crate::error::{AppError, AppResult, DbContext as _, on_constraint};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct OrganizationRow {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub plan: String,
    pub created_at: DateTime<Utc>,
}

pub(super) const ORG_COLUMNS: &str = "o.id, o.slug, o.name, o.plan, o.created_at";

impl OrganizationRow {
    fn from_row(row: &Row) -> AppResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            slug: row.try_get("slug")?,
            name: row.try_get("name")?,
            plan: row.try_get("plan")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

pub async fn current_organization(tx: &TenantTx) -> AppResult<Option<OrganizationRow>> {
    let sql = format!(
        "select {ORG_COLUMNS} from organizations o where o.id = (select app.current_org_id())"
    );
    tx.query_opt(&sql, &[])
        .await
        .db_context("failed to load the current organization")?
        .as_ref()
        .map(OrganizationRow::from_row)
        .transpose()
}

/// Organizations the current user belongs to (or the API key's one), by name.
pub async fn my_organizations(tx: &TenantTx) -> AppResult<Vec<OrganizationRow>> {
    let sql = format!(
        "select {ORG_COLUMNS} from organizations o
          where o.id = (select app.current_org_id())
             or o.id in (select m.org_id from memberships m where m.user_id = (select app.current_user_id()))
          order by o.name, o.id"
    );
    tx.query(&sql, &[])
        .await
        .db_context("failed to list the caller's organizations")?
        .iter()
        .map(OrganizationRow::from_row)
        .collect()
}

/// Inserts an organization and its owner membership. The caller has switched the transaction's
/// context to the new organization with the owner role, which is what the RLS policies check.
pub async fn insert_organization(
    tx: &TenantTx,
    id: Uuid,
    slug: &str,
    name: &str,
    owner: Uuid,
) -> AppResult<OrganizationRow> {
    let sql = format!(
        "insert into organizations as o (id, slug, name) values ($1, $2, $3) returning {ORG_COLUMNS}"
    );
    let rows = tx
        .query_raw(&sql, &[&id, &slug, &name])
        .await
        .and_then(|rows| {
            rows.map_err(|e| {
                on_constraint(e, |c| {
                    (c == "organizations_slug_key")
                        .then(|| AppError::invalid_field("slug", "this slug is already taken"))
                })
            })
        })
        .db_context("failed to insert organization")?;
    let org = rows
        .first()
        .map(OrganizationRow::from_row)
        .transpose()?
        .ok_or_else(|| anyhow::anyhow!("insert returned no row"))?;
    tx.execute(
        "insert into memberships (org_id, user_id, role) values ($1, $2, 'owner')",
        &[&id, &owner],
    )
    .await
    .db_context("failed to insert the owner membership")?;
    Ok(org)
}

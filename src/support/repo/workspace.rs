//! Workspaces.

use crate::db::TenantTx;
use crate::error::DbContext as _;
use crate::error::{AppError, AppResult, on_constraint};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct WorkspaceRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl WorkspaceRow {
    fn from_row(row: &Row) -> AppResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

pub async fn workspaces(tx: &TenantTx) -> AppResult<Vec<WorkspaceRow>> {
    let rows = tx
        .query(
            "select id, name, created_at from workspaces order by name, id limit 1000",
            &[],
        )
        .await
        .db_context("failed to list workspaces")?;
    rows.iter().map(WorkspaceRow::from_row).collect()
}

pub async fn workspaces_by_ids(tx: &TenantTx, ids: &[Uuid]) -> AppResult<Vec<WorkspaceRow>> {
    let rows = tx
        .query(
            "select id, name, created_at from workspaces where id = any($1)",
            &[&ids],
        )
        .await
        .db_context("failed to load workspaces by id")?;
    rows.iter().map(WorkspaceRow::from_row).collect()
}

pub async fn insert_workspace(tx: &TenantTx, name: &str) -> AppResult<WorkspaceRow> {
    let rows = tx
        .query_raw(
            "insert into workspaces (org_id, name) values ((select app.current_org_id()), $1)
             returning id, name, created_at",
            &[&name],
        )
        .await
        .and_then(|rows| {
            rows.map_err(|e| {
                on_constraint(e, |c| {
                    (c == "workspaces_org_name_key").then(|| {
                        AppError::invalid_field("name", "a workspace with this name already exists")
                    })
                })
            })
        })
        .db_context("failed to insert workspace")?;
    rows.first()
        .map(WorkspaceRow::from_row)
        .transpose()?
        .ok_or_else(|| anyhow::anyhow!("insert returned no row").into())
}

//! API keys: creating (the secret is returned once), listing, revoking.

use crate::authz::Role;
use crate::db::TenantTx;
use crate::error::{AppResult, DbContext as _};
use crate::identity::auth::{API_KEY_PREFIX, hash_secret, new_secret};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub prefix: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub(super) const API_KEY_COLUMNS: &str =
    "id, name, role, prefix, created_by, created_at, last_used_at, revoked_at";

impl ApiKeyRow {
    fn from_row(row: &Row) -> AppResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            role: row.try_get::<_, String>("role")?.parse()?,
            prefix: row.try_get("prefix")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            last_used_at: row.try_get("last_used_at")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    }
}

/// Creates an API key with a new random secret; returns the row and the secret, which is stored only
/// as its sha256 and must be shown to the caller now.
pub async fn create_api_key(
    tx: &TenantTx,
    name: &str,
    role: Role,
    created_by: Option<Uuid>,
) -> AppResult<(ApiKeyRow, String)> {
    let secret = new_secret(API_KEY_PREFIX);
    let prefix: String = secret.chars().take(API_KEY_PREFIX.len() + 8).collect();
    let row = insert_api_key(tx, name, role, &prefix, &hash_secret(&secret), created_by).await?;
    Ok((row, secret))
}

pub(super) async fn insert_api_key(
    tx: &TenantTx,
    name: &str,
    role: Role,
    prefix: &str,
    secret_hash: &[u8],
    created_by: Option<Uuid>,
) -> AppResult<ApiKeyRow> {
    let sql = format!(
        "insert into api_keys (org_id, name, role, prefix, secret_hash, created_by)
         values ((select app.current_org_id()), $1, $2, $3, $4, $5) returning {API_KEY_COLUMNS}"
    );
    let row = tx
        .query_one(
            &sql,
            &[&name, &role.as_str(), &prefix, &secret_hash, &created_by],
        )
        .await
        .db_context("failed to insert api key")?;
    ApiKeyRow::from_row(&row)
}

pub async fn api_keys(tx: &TenantTx) -> AppResult<Vec<ApiKeyRow>> {
    let sql =
        format!("select {API_KEY_COLUMNS} from api_keys order by created_at desc, id limit 500");
    tx.query(&sql, &[])
        .await
        .db_context("failed to list api keys")?
        .iter()
        .map(ApiKeyRow::from_row)
        .collect()
}

/// Revokes a key (idempotently: a revoked key keeps its first revocation time).
pub async fn revoke_api_key(tx: &TenantTx, id: Uuid) -> AppResult<Option<ApiKeyRow>> {
    let sql = format!(
        "update api_keys set revoked_at = coalesce(revoked_at, now()) where id = $1 returning {API_KEY_COLUMNS}"
    );
    tx.query_opt(&sql, &[&id])
        .await
        .db_context("failed to revoke api key")?
        .as_ref()
        .map(ApiKeyRow::from_row)
        .transpose()
}

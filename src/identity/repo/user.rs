//! Users, as the current organization may see them.

use crate::db::TenantTx;
use crate::error::{AppResult, DbContext as _};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: Uuid,
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

pub async fn users_by_ids(tx: &TenantTx, ids: &[Uuid]) -> AppResult<Vec<UserRow>> {
    let rows = tx
        .query(
            "select id, subject, email, name from users where id = any($1)",
            &[&ids],
        )
        .await
        .db_context("failed to load users by id")?;
    rows.iter()
        .map(|r| {
            Ok(UserRow {
                id: r.try_get(0)?,
                subject: r.try_get(1)?,
                email: r.try_get(2)?,
                name: r.try_get(3)?,
            })
        })
        .collect()
}

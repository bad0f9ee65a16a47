//! Memberships: listing, adding (with the seat limit), changing roles, removing.

use crate::authz::Role;
use crate::db::TenantTx;
use crate::error::{AppError, AppResult, DbContext as _, on_constraint};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct MemberRow {
    pub user_id: Uuid,
    pub role: Role,
    pub email: Option<String>,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl MemberRow {
    fn from_row(row: &Row) -> AppResult<Self> {
        Ok(Self {
            user_id: row.try_get("user_id")?,
            role: row.try_get::<_, String>("role")?.parse()?,
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

// Memberships are also visible to their own user across organizations (for the org picker), so
// member lists name the current organization explicitly.
pub(super) const MEMBER_SELECT: &str = "select m.user_id, m.role, u.email, u.name, m.created_at
      from memberships m join users u on u.id = m.user_id
     where m.org_id = (select app.current_org_id())";

/// A page of members ordered by join time, after `(created_at, user_id)` when given.
pub async fn members_page(
    tx: &TenantTx,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<MemberRow>> {
    let (time, id) = after.unzip();
    let sql = format!(
        "{MEMBER_SELECT} and ($1::timestamptz is null or (m.created_at, m.user_id) > ($1, $2))
         order by m.created_at, m.user_id limit $3"
    );
    tx.query(&sql, &[&time, &id, &limit])
        .await
        .db_context("failed to load a page of members")?
        .iter()
        .map(MemberRow::from_row)
        .collect()
}

pub async fn member_count(tx: &TenantTx) -> AppResult<i64> {
    let row = tx
        .query_one(
            "select count(*) from memberships m where m.org_id = (select app.current_org_id())",
            &[],
        )
        .await
        .db_context("failed to count members")?;
    Ok(row.try_get(0)?)
}

pub async fn member(tx: &TenantTx, user_id: Uuid) -> AppResult<Option<MemberRow>> {
    let sql = format!("{MEMBER_SELECT} and m.user_id = $1");
    tx.query_opt(&sql, &[&user_id])
        .await
        .db_context("failed to load member")?
        .as_ref()
        .map(MemberRow::from_row)
        .transpose()
}

/// Locks the organization's owner memberships (serialising concurrent changes to owners) and counts them.
pub async fn lock_owners(tx: &TenantTx) -> AppResult<usize> {
    // Row locks taken outside a write statement come after the organization's write lock, like every
    // other lock of a writer (see app.lock_org_for_writes).
    tx.execute(
        "select app.lock_org_for_writes((select app.current_org_id()))",
        &[],
    )
    .await
    .db_context("failed to lock the organization for writes")?;
    let rows = tx
        .query(
            "select m.user_id from memberships m
              where m.org_id = (select app.current_org_id()) and m.role = 'owner' for update",
            &[],
        )
        .await
        .db_context("failed to lock owner memberships")?;
    Ok(rows.len())
}

/// The constraint name the seat-limit triggers raise (members and pending invitations take seats).
pub const SEAT_LIMIT: &str = "plan_seat_limit";

/// The error for an invitation, addition or plan change past the plan's seat limit.
pub fn no_free_seat() -> AppError {
    AppError::bad_input(
        "the organization's plan has no seat for this: members and pending invitations take seats; \
         upgrade the plan (changePlan), remove a member or revoke an invitation",
    )
}

pub async fn insert_member(tx: &TenantTx, user_id: Uuid, role: Role) -> AppResult<()> {
    tx.query_raw(
        "insert into memberships (org_id, user_id, role) values ((select app.current_org_id()), $1, $2)",
        &[&user_id, &role.as_str()],
    )
    .await
    .and_then(|rows| {
        rows.map_err(|e| {
            on_constraint(e, |c| match c {
                "memberships_pkey" => Some(AppError::invalid_field("userId", "this user is already a member")),
                "memberships_user_id_fkey" => Some(AppError::NotFound("user")),
                SEAT_LIMIT => Some(no_free_seat()),
                _ => None,
            })
        })
    })
    .db_context("failed to insert member")?;
    Ok(())
}

pub async fn update_member_role(tx: &TenantTx, user_id: Uuid, role: Role) -> AppResult<bool> {
    let n = tx
        .execute(
            "update memberships set role = $2 where org_id = (select app.current_org_id()) and user_id = $1",
            &[&user_id, &role.as_str()],
        )
        .await
        .db_context("failed to update member role")?;
    Ok(n == 1)
}

pub async fn delete_member(tx: &TenantTx, user_id: Uuid) -> AppResult<bool> {
    let n = tx
        .execute(
            "delete from memberships where org_id = (select app.current_org_id()) and user_id = $1",
            &[&user_id],
        )
        .await
        .db_context("failed to delete member")?;
    Ok(n == 1)
}

/// Whether a user may be added by id (see `auth_private.can_add_member`): they are new to deskgraph or
/// already share an organization with the caller. Anyone else is invited instead.
pub async fn can_add_member(tx: &TenantTx, user_id: Uuid) -> AppResult<bool> {
    let row = tx
        .query_one("select auth_private.can_add_member($1)", &[&user_id])
        .await
        .db_context("failed to check whether the user can be added")?;
    Ok(row.try_get(0)?)
}

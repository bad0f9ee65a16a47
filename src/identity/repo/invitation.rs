//! Invitations: creating, listing, revoking and accepting.

use super::member::{SEAT_LIMIT, no_free_seat};
use crate::authz::Role;
use crate::db::TenantTx;
use crate::error::{AppResult, DbContext as _, on_constraint};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct InvitationRow {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub invited_by: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub(super) const INVITATION_COLUMNS: &str =
    "id, email, role, invited_by, expires_at, accepted_at, created_at";

impl InvitationRow {
    fn from_row(row: &Row) -> AppResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            role: row.try_get::<_, String>("role")?.parse()?,
            invited_by: row.try_get("invited_by")?,
            expires_at: row.try_get("expires_at")?,
            accepted_at: row.try_get("accepted_at")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

pub async fn insert_invitation(
    tx: &TenantTx,
    email: &str,
    role: Role,
    token_hash: &[u8],
    invited_by: Option<Uuid>,
    ttl_days: i32,
) -> AppResult<InvitationRow> {
    let sql = format!(
        "insert into invitations (org_id, email, role, token_hash, invited_by, expires_at)
         values ((select app.current_org_id()), $1, $2, $3, $4, now() + make_interval(days => $5))
         returning {INVITATION_COLUMNS}"
    );
    let rows = tx
        .query_raw(
            &sql,
            &[&email, &role.as_str(), &token_hash, &invited_by, &ttl_days],
        )
        .await
        .and_then(|rows| {
            rows.map_err(|e| on_constraint(e, |c| (c == SEAT_LIMIT).then(no_free_seat)))
        })
        .db_context("failed to insert invitation")?;
    rows.first()
        .map(InvitationRow::from_row)
        .transpose()?
        .ok_or_else(|| anyhow::anyhow!("insert returned no row").into())
}

/// The role a pending invitation offers, if there is one with this id.
pub async fn pending_invitation_role(tx: &TenantTx, id: Uuid) -> AppResult<Option<Role>> {
    tx.query_opt(
        "select role from invitations where org_id = (select app.current_org_id()) and id = $1
            and accepted_at is null",
        &[&id],
    )
    .await
    .db_context("failed to load invitation role")?
    .map(|r| -> AppResult<Role> { Ok(r.try_get::<_, String>(0)?.parse()?) })
    .transpose()
}

/// Revokes (deletes) a pending invitation; `None` when there is none with this id.
pub async fn delete_invitation(tx: &TenantTx, id: Uuid) -> AppResult<Option<InvitationRow>> {
    let sql = format!(
        "delete from invitations where org_id = (select app.current_org_id()) and id = $1
            and accepted_at is null
            -- only owners touch invitations to the owner role
            and (role <> 'owner' or (select app.current_app_role()) = 'owner')
         returning {INVITATION_COLUMNS}"
    );
    tx.query_opt(&sql, &[&id])
        .await
        .db_context("failed to delete invitation")?
        .as_ref()
        .map(InvitationRow::from_row)
        .transpose()
}

pub async fn pending_invitations(tx: &TenantTx) -> AppResult<Vec<InvitationRow>> {
    let sql = format!(
        "select {INVITATION_COLUMNS} from invitations where accepted_at is null and expires_at > now()
          order by created_at desc, id limit 500"
    );
    tx.query(&sql, &[])
        .await
        .db_context("failed to list pending invitations")?
        .iter()
        .map(InvitationRow::from_row)
        .collect()
}

/// Outcome of `auth_private.accept_invitation`.
pub enum Acceptance {
    Accepted {
        org_id: Uuid,
        role: Role,
    },
    AlreadyMember {
        org_id: Uuid,
        role: Role,
    },
    Expired,
    Invalid,
    /// The invitation is for another e-mail (unmasked: mask it before showing it). Nothing was written.
    WrongPerson {
        invited_email: String,
    },
}

/// Accepts for the transaction's user (`app.user_id`). `bound_email` is the caller's verified e-mail,
/// normalized (an invitation for any other is refused as [`Acceptance::WrongPerson`]; `""` matches
/// none), or `None` when invitations are not bound to e-mails.
pub async fn accept_invitation(
    tx: &TenantTx,
    token_hash: &[u8],
    bound_email: Option<&str>,
) -> AppResult<Acceptance> {
    let rows = tx
        .query_raw(
            "select org_id, role, outcome, invited_email
               from auth_private.accept_invitation($1, $2)",
            &[&token_hash, &bound_email],
        )
        .await
        .and_then(|rows| {
            rows.map_err(|e| on_constraint(e, |c| (c == SEAT_LIMIT).then(no_free_seat)))
        })
        .db_context("failed to accept invitation")?;
    let row = rows
        .first()
        .ok_or_else(|| anyhow::anyhow!("accept_invitation returned no row"))?;
    let outcome: String = row.try_get(2)?;
    let org_role = || -> AppResult<(Uuid, Role)> {
        let org: Option<Uuid> = row.try_get(0)?;
        let role: Option<String> = row.try_get(1)?;
        match (org, role) {
            (Some(org), Some(role)) => Ok((org, role.parse()?)),
            _ => Err(anyhow::anyhow!("accept_invitation returned no organization").into()),
        }
    };
    Ok(match outcome.as_str() {
        "accepted" => {
            let (org_id, role) = org_role()?;
            Acceptance::Accepted { org_id, role }
        }
        "already_member" => {
            let (org_id, role) = org_role()?;
            Acceptance::AlreadyMember { org_id, role }
        }
        "expired" => Acceptance::Expired,
        "wrong_person" => Acceptance::WrongPerson {
            invited_email: row
                .try_get::<_, Option<String>>(3)?
                .ok_or_else(|| anyhow::anyhow!("accept_invitation returned no invited e-mail"))?,
        },
        _ => Acceptance::Invalid,
    })
}

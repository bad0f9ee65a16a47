//! SQL for identity tables. Every function runs on the operation's [`TenantTx`], so row level
//! security scopes it to the caller's organization.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::authz::Role;
use crate::db::TenantTx;
use crate::error::{AppError, AppResult, DbContext as _, on_constraint};
use crate::identity::auth::{API_KEY_PREFIX, hash_secret, new_secret};

#[derive(Debug, Clone)]
pub struct OrganizationRow {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub plan: String,
    pub created_at: DateTime<Utc>,
}

const ORG_COLUMNS: &str = "o.id, o.slug, o.name, o.plan, o.created_at";

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
const MEMBER_SELECT: &str = "select m.user_id, m.role, u.email, u.name, m.created_at
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

const INVITATION_COLUMNS: &str = "id, email, role, invited_by, expires_at, accepted_at, created_at";

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
    Accepted { org_id: Uuid, role: Role },
    AlreadyMember { org_id: Uuid, role: Role },
    Expired,
    Invalid,
}

/// Accepts for the transaction's user (`app.user_id`).
pub async fn accept_invitation(tx: &TenantTx, token_hash: &[u8]) -> AppResult<Acceptance> {
    let rows = tx
        .query_raw(
            "select org_id, role, outcome from auth_private.accept_invitation($1)",
            &[&token_hash],
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
        _ => Acceptance::Invalid,
    })
}

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

const API_KEY_COLUMNS: &str =
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

async fn insert_api_key(
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

/// Whether a user may be added by id (see `auth_private.can_add_member`): they are new to deskgraph or
/// already share an organization with the caller. Anyone else is invited instead.
pub async fn can_add_member(tx: &TenantTx, user_id: Uuid) -> AppResult<bool> {
    let row = tx
        .query_one("select auth_private.can_add_member($1)", &[&user_id])
        .await
        .db_context("failed to check whether the user can be added")?;
    Ok(row.try_get(0)?)
}

//! GraphQL types and resolvers for identity: viewer, organizations, members, invitations, API keys.

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::authz::{Object as Obj, Role};
use crate::error::{AppError, AppResult};
use crate::graphql::pagination::{self, Cursor, PageInfo};
use crate::graphql::{email_field, handle, parse_id, session, text_field};
use crate::identity::auth::{hash_secret, new_secret};
use crate::identity::loaders::UserKey;
use crate::identity::repo;
use crate::identity::service::{self, OrganizationFollowUp};

/// Days an invitation stays valid.
const INVITATION_TTL_DAYS: i32 = 7;
const INVITATION_PREFIX: &str = "dginv_";

/// A person, as known from the identity provider.
#[derive(SimpleObject, Clone, Debug)]
pub struct User {
    pub id: ID,
    pub email: Option<String>,
    pub name: Option<String>,
}

impl From<repo::UserRow> for User {
    fn from(row: repo::UserRow) -> Self {
        Self {
            id: row.id.into(),
            email: row.email,
            name: row.name,
        }
    }
}

/// An organization: the tenant. Everything else belongs to one.
#[derive(SimpleObject, Clone, Debug)]
pub struct Organization {
    pub id: ID,
    /// URL-friendly unique name (lowercase letters, digits and dashes).
    pub slug: String,
    pub name: String,
    /// The billing plan (`free` until plans arrive).
    pub plan: String,
    pub created_at: DateTime<Utc>,
}

impl From<repo::OrganizationRow> for Organization {
    fn from(row: repo::OrganizationRow) -> Self {
        Self {
            id: row.id.into(),
            slug: row.slug,
            name: row.name,
            plan: row.plan,
            created_at: row.created_at,
        }
    }
}

/// Who is calling, and as what.
#[derive(SimpleObject)]
pub struct Viewer {
    /// The signed-in user; null for API keys.
    pub user: Option<User>,
    /// The organization this request acts in; null when none was chosen.
    pub organization: Option<Organization>,
    /// The caller's role in that organization.
    pub role: Option<Role>,
    /// The API key's id when the caller is an API key.
    pub api_key_id: Option<ID>,
}

/// A member of the current organization.
#[derive(SimpleObject, Clone, Debug)]
pub struct Member {
    pub user: User,
    pub role: Role,
    /// When they joined.
    pub created_at: DateTime<Utc>,
}

impl From<repo::MemberRow> for Member {
    fn from(row: repo::MemberRow) -> Self {
        Self {
            user: User {
                id: row.user_id.into(),
                email: row.email,
                name: row.name,
            },
            role: row.role,
            created_at: row.created_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct MemberEdge {
    pub cursor: String,
    pub node: Member,
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct MemberConnection {
    pub edges: Vec<MemberEdge>,
    pub page_info: PageInfo,
}

#[ComplexObject]
impl MemberConnection {
    /// Number of members in the organization.
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<i64> {
        repo::member_count(&session(ctx)?.tx).await
    }
}

/// A pending invitation to join the organization.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Invitation {
    pub id: ID,
    pub email: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub invited_by: Option<Uuid>,
}

#[ComplexObject]
impl Invitation {
    /// The member who sent it.
    async fn invited_by(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        load_user(ctx, self.invited_by).await
    }
}

impl From<repo::InvitationRow> for Invitation {
    fn from(row: repo::InvitationRow) -> Self {
        Self {
            id: row.id.into(),
            email: row.email,
            role: row.role,
            expires_at: row.expires_at,
            accepted_at: row.accepted_at,
            created_at: row.created_at,
            invited_by: row.invited_by,
        }
    }
}

/// A new invitation and its one-time token: send the token to the invitee; it is not shown again.
#[derive(SimpleObject)]
pub struct CreatedInvitation {
    pub invitation: Invitation,
    pub token: String,
}

/// The membership an accepted invitation gave.
#[derive(SimpleObject)]
pub struct Membership {
    pub organization: Organization,
    pub role: Role,
}

/// An API key for tools and integrations. Its secret is shown only when it is created.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct ApiKey {
    pub id: ID,
    pub name: String,
    pub role: Role,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    #[graphql(skip)]
    pub created_by: Option<Uuid>,
}

#[ComplexObject]
impl ApiKey {
    async fn created_by(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        load_user(ctx, self.created_by).await
    }
}

impl From<repo::ApiKeyRow> for ApiKey {
    fn from(row: repo::ApiKeyRow) -> Self {
        Self {
            id: row.id.into(),
            name: row.name,
            role: row.role,
            prefix: row.prefix,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
            created_by: row.created_by,
        }
    }
}

/// A new API key and its secret, shown this once: store it now.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    pub api_key: ApiKey,
    pub secret: String,
}

/// What kind of caller made a change.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    /// A signed-in person.
    User,
    /// An API key.
    ApiKey,
    /// deskgraph itself (monthly allowances, background AI work).
    System,
    /// A change made directly in the database, outside deskgraph (a migration, an operator's SQL).
    Database,
}

/// Who made a change recorded in the ledger or the audit trail.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Actor {
    pub kind: ActorKind,
    /// The user's id, for `USER`.
    pub user_id: Option<ID>,
    /// The API key's id, for `API_KEY`.
    pub api_key_id: Option<ID>,
    /// The role they acted with (`owner`, `admin`, `agent`, … or `system`); null when unknown.
    pub role: Option<String>,
}

impl Actor {
    pub fn new(user_id: Option<Uuid>, api_key_id: Option<Uuid>, role: Option<String>) -> Self {
        let kind = match (user_id, api_key_id, role.as_deref()) {
            (Some(_), _, _) => ActorKind::User,
            (None, Some(_), _) => ActorKind::ApiKey,
            (None, None, Some("system")) => ActorKind::System,
            (None, None, _) => ActorKind::Database,
        };
        Self {
            kind,
            user_id: user_id.map(ID::from),
            api_key_id: api_key_id.map(ID::from),
            role,
        }
    }
}

#[ComplexObject]
impl Actor {
    /// The user, while they are a member of this organization (null once they have left).
    async fn user(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        let id = self
            .user_id
            .as_ref()
            .and_then(|id| Uuid::parse_str(id.as_str()).ok());
        load_user(ctx, id).await
    }
}

pub async fn load_user(ctx: &Context<'_>, id: Option<Uuid>) -> AppResult<Option<User>> {
    let Some(id) = id else { return Ok(None) };
    Ok(session(ctx)?
        .loader
        .load_one(UserKey(id))
        .await
        .map_err(AppError::from)?
        .map(User::from))
}

#[derive(Default)]
pub struct IdentityQuery;

#[Object]
impl IdentityQuery {
    /// The caller: works with or without an organization chosen.
    async fn viewer(&self, ctx: &Context<'_>) -> AppResult<Viewer> {
        let s = session(ctx)?;
        let c = s.context();
        let user = match c.user_id {
            Some(id) => repo::users_by_ids(&s.tx, &[id])
                .await?
                .into_iter()
                .next()
                .map(User::from),
            None => None,
        };
        let organization = match c.org_id {
            Some(_) => repo::current_organization(&s.tx)
                .await?
                .map(Organization::from),
            None => None,
        };
        Ok(Viewer {
            user,
            organization,
            role: c.role,
            api_key_id: c.api_key_id.map(ID::from),
        })
    }

    /// The organization this request acts in.
    async fn organization(&self, ctx: &Context<'_>) -> AppResult<Organization> {
        let s = session(ctx)?;
        s.require(Obj::Organization, "read")?;
        repo::current_organization(&s.tx)
            .await?
            .map(Organization::from)
            .ok_or(AppError::NotFound("organization"))
    }

    /// Organizations the caller belongs to (for an API key, its own).
    async fn organizations(&self, ctx: &Context<'_>) -> AppResult<Vec<Organization>> {
        let s = session(ctx)?;
        Ok(repo::my_organizations(&s.tx)
            .await?
            .into_iter()
            .map(Organization::from)
            .collect())
    }

    /// Members of the organization, oldest first.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last member of the previous page.")] after: Option<String>,
    ) -> AppResult<MemberConnection> {
        let s = session(ctx)?;
        s.require(Obj::Member, "read")?;
        let limit = pagination::page_size(first)?;
        let after = Cursor::decode_time(after.as_deref())?;
        let rows = repo::members_page(&s.tx, after, limit + 1).await?;
        let (edges, page_info) = pagination::page(rows, limit, after.is_some(), |m| {
            Cursor::at_time(m.created_at, m.user_id)
        });
        Ok(MemberConnection {
            edges: edges
                .into_iter()
                .map(|(cursor, m)| MemberEdge {
                    cursor,
                    node: m.into(),
                })
                .collect(),
            page_info,
        })
    }

    /// Pending invitations (owners and admins).
    async fn invitations(&self, ctx: &Context<'_>) -> AppResult<Vec<Invitation>> {
        let s = session(ctx)?;
        s.require(Obj::Invitation, "read")?;
        Ok(repo::pending_invitations(&s.tx)
            .await?
            .into_iter()
            .map(Invitation::from)
            .collect())
    }

    /// The organization's API keys, newest first (owners and admins).
    async fn api_keys(&self, ctx: &Context<'_>) -> AppResult<Vec<ApiKey>> {
        let s = session(ctx)?;
        s.require(Obj::ApiKey, "read")?;
        Ok(repo::api_keys(&s.tx)
            .await?
            .into_iter()
            .map(ApiKey::from)
            .collect())
    }
}

#[derive(InputObject)]
pub struct CreateOrganizationInput {
    /// Display name, 1 to 100 characters.
    pub name: String,
    /// Unique URL name: 1 to 40 lowercase letters, digits or inner dashes.
    pub slug: String,
}

#[derive(InputObject)]
pub struct InviteMemberInput {
    pub email: String,
    pub role: Role,
}

#[derive(InputObject)]
pub struct AddMemberInput {
    pub user_id: ID,
    pub role: Role,
}

#[derive(InputObject)]
pub struct UpdateMemberRoleInput {
    pub user_id: ID,
    pub role: Role,
}

#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// What the key is for, 1 to 100 characters.
    pub name: String,
    /// `ANALYST` for analytics tools (persisted queries only); `VIEWER` or `AGENT` for integrations.
    /// Keys never administer members, invitations or keys.
    pub role: Role,
}

fn valid_slug(slug: &str) -> bool {
    let bytes = slug.as_bytes();
    (1..=40).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

fn member_role(field: &'static str, role: Role) -> AppResult<Role> {
    if role.is_member_role() {
        Ok(role)
    } else {
        Err(AppError::invalid_field(
            field,
            "ANALYST is a role for API keys, not members",
        ))
    }
}

#[derive(Default)]
pub struct IdentityMutation;

#[Object]
impl IdentityMutation {
    /// Creates an organization with the caller as its owner. Works without an organization chosen.
    async fn create_organization(
        &self,
        ctx: &Context<'_>,
        input: CreateOrganizationInput,
    ) -> AppResult<Organization> {
        let s = session(ctx)?;
        let user_id = s.user_id()?;
        let name = text_field("name", &input.name, 1, 100)?;
        let slug = input.slug.trim().to_owned();
        if !valid_slug(&slug) {
            return Err(AppError::invalid_field(
                "slug",
                "slug must be 1 to 40 lowercase letters, digits or dashes, not starting or ending with a dash",
            ));
        }
        let follow_up = handle::<&'static dyn OrganizationFollowUp>(ctx)?;
        let org = service::create_organization(&s.tx, *follow_up, user_id, &slug, &name).await?;
        Ok(org.into())
    }

    /// Invites someone by e-mail. Returns a one-time token for them to accept with `acceptInvitation`.
    async fn invite_member(
        &self,
        ctx: &Context<'_>,
        input: InviteMemberInput,
    ) -> AppResult<CreatedInvitation> {
        let s = session(ctx)?;
        s.require(Obj::Member, "invite")?;
        s.user_id()?; // people administer; API keys never do
        let role = member_role("role", input.role)?;
        if role == Role::Owner {
            s.require(Obj::Member, "manage_owner")?;
        }
        let email = email_field("email", &input.email)?;
        let token = new_secret(INVITATION_PREFIX);
        let c = s.context();
        let row = repo::insert_invitation(
            &s.tx,
            &email,
            role,
            &hash_secret(&token),
            c.user_id,
            INVITATION_TTL_DAYS,
        )
        .await?;
        Ok(CreatedInvitation {
            invitation: row.into(),
            token,
        })
    }

    /// Revokes a pending invitation: its token stops working and its seat is free again.
    async fn revoke_invitation(&self, ctx: &Context<'_>, id: ID) -> AppResult<Invitation> {
        let s = session(ctx)?;
        s.require(Obj::Invitation, "revoke")?;
        s.user_id()?; // people administer; API keys never do
        let id = parse_id("id", &id)?;
        if repo::pending_invitation_role(&s.tx, id).await? == Some(Role::Owner) {
            s.require(Obj::Member, "manage_owner")?;
        }
        repo::delete_invitation(&s.tx, id)
            .await?
            .map(Invitation::from)
            .ok_or(AppError::NotFound("invitation"))
    }

    /// Accepts an invitation for the signed-in user. Works without an organization chosen.
    async fn accept_invitation(&self, ctx: &Context<'_>, token: String) -> AppResult<Membership> {
        let s = session(ctx)?;
        s.user_id()?; // invitations are accepted by people, for themselves
        let (org_id, role) =
            match repo::accept_invitation(&s.tx, &hash_secret(token.trim())).await? {
                repo::Acceptance::Accepted { org_id, role }
                | repo::Acceptance::AlreadyMember { org_id, role } => (org_id, role),
                repo::Acceptance::Expired => {
                    return Err(AppError::invalid_field(
                        "token",
                        "this invitation has expired; ask for a new one",
                    ));
                }
                repo::Acceptance::Invalid => return Err(AppError::NotFound("invitation")),
            };
        // The new membership makes the organization visible to its member.
        let org = repo::my_organizations(&s.tx)
            .await?
            .into_iter()
            .find(|o| o.id == org_id)
            .ok_or_else(|| anyhow::anyhow!("accepted organization is not visible"))?;
        Ok(Membership {
            organization: org.into(),
            role,
        })
    }

    /// Adds an existing user to the organization.
    async fn add_member(&self, ctx: &Context<'_>, input: AddMemberInput) -> AppResult<Member> {
        let s = session(ctx)?;
        s.require(Obj::Member, "add")?;
        s.user_id()?; // people administer; API keys never do
        let role = member_role("role", input.role)?;
        if role == Role::Owner {
            s.require(Obj::Member, "manage_owner")?;
        }
        let user_id = parse_id("userId", &input.user_id)?;
        if !repo::can_add_member(&s.tx, user_id).await? {
            // Unknown, or a member of organizations the caller is not in: same answer, invite them.
            return Err(AppError::NotFound("user"));
        }
        repo::insert_member(&s.tx, user_id, role).await?;
        repo::member(&s.tx, user_id)
            .await?
            .map(Member::from)
            .ok_or(AppError::NotFound("user"))
    }

    /// Changes a member's role. Only owners touch owners, and the last owner cannot be demoted.
    async fn update_member_role(
        &self,
        ctx: &Context<'_>,
        input: UpdateMemberRoleInput,
    ) -> AppResult<Member> {
        let s = session(ctx)?;
        s.require(Obj::Member, "update")?;
        s.user_id()?; // people administer; API keys never do
        let role = member_role("role", input.role)?;
        let user_id = parse_id("userId", &input.user_id)?;
        let owners = repo::lock_owners(&s.tx).await?;
        let current = repo::member(&s.tx, user_id)
            .await?
            .ok_or(AppError::NotFound("member"))?;
        if current.role == Role::Owner || role == Role::Owner {
            s.require(Obj::Member, "manage_owner")?;
        }
        if current.role == Role::Owner && role != Role::Owner && owners <= 1 {
            return Err(AppError::invalid_field(
                "role",
                "the last owner cannot be demoted; make someone else owner first",
            ));
        }
        repo::update_member_role(&s.tx, user_id, role).await?;
        repo::member(&s.tx, user_id)
            .await?
            .map(Member::from)
            .ok_or(AppError::NotFound("member"))
    }

    /// Removes a member; returns their user id. Only owners remove owners, and never the last one.
    async fn remove_member(&self, ctx: &Context<'_>, user_id: ID) -> AppResult<ID> {
        let s = session(ctx)?;
        s.require(Obj::Member, "remove")?;
        s.user_id()?; // people administer; API keys never do
        let id = parse_id("userId", &user_id)?;
        let owners = repo::lock_owners(&s.tx).await?;
        let current = repo::member(&s.tx, id)
            .await?
            .ok_or(AppError::NotFound("member"))?;
        if current.role == Role::Owner {
            s.require(Obj::Member, "manage_owner")?;
            if owners <= 1 {
                return Err(AppError::invalid_field(
                    "userId",
                    "the last owner cannot be removed",
                ));
            }
        }
        if !repo::delete_member(&s.tx, id).await? {
            return Err(AppError::NotFound("member"));
        }
        Ok(user_id)
    }

    /// Creates an API key. The secret is in the answer and never again.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> AppResult<CreatedApiKey> {
        let s = session(ctx)?;
        s.require(Obj::ApiKey, "create")?;
        let user_id = s.user_id()?; // people administer; API keys never do
        let name = text_field("name", &input.name, 1, 100)?;
        if !matches!(input.role, Role::Agent | Role::Viewer | Role::Analyst) {
            return Err(AppError::invalid_field(
                "role",
                "API keys are AGENT, VIEWER or ANALYST: administering needs a person",
            ));
        }
        let (row, secret) = repo::create_api_key(&s.tx, &name, input.role, Some(user_id)).await?;
        Ok(CreatedApiKey {
            api_key: row.into(),
            secret,
        })
    }

    /// Revokes an API key at once; requests with it fail from now on.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> AppResult<ApiKey> {
        let s = session(ctx)?;
        s.require(Obj::ApiKey, "revoke")?;
        s.user_id()?; // people administer; API keys never do
        let id = parse_id("id", &id)?;
        repo::revoke_api_key(&s.tx, id)
            .await?
            .map(ApiKey::from)
            .ok_or(AppError::NotFound("API key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_database_rule() {
        for ok in ["acme", "a", "acme-2", "a1-b2"] {
            assert!(valid_slug(ok), "{ok}");
        }
        for bad in [
            "",
            "-acme",
            "acme-",
            "Acme",
            "ac me",
            "acmé",
            &"a".repeat(41),
        ] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }
}

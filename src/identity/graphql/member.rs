//! Members of an organization: listing, adding, changing roles, removing.

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::user::User;
use crate::authz::{Object as Obj, Role};
use crate::error::{AppError, AppResult};
use crate::graphql::pagination::{self, Cursor, PageInfo};
use crate::graphql::{parse_id, session};
use crate::identity::repo;

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

pub(super) fn member_role(field: &'static str, role: Role) -> AppResult<Role> {
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
pub struct MemberQuery;

#[Object]
impl MemberQuery {
    /// Members of the organization, oldest first.
    #[graphql(complexity = "pagination::page_complexity(first, child_complexity)")]
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
}

#[derive(Default)]
pub struct MemberMutation;

#[Object]
impl MemberMutation {
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
}

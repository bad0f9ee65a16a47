//! Users and actors: who a person is, and who made a recorded change.

use async_graphql::{ComplexObject, Context, ID, SimpleObject};
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::graphql::session;
use crate::identity::loaders::UserKey;
use crate::identity::repo;

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

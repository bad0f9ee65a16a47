//! API keys for tools and integrations: listing, creating (the secret is shown once), revoking.

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::user::{User, load_user};
use crate::authz::{Object as Obj, Role};
use crate::error::{AppError, AppResult};
use crate::graphql::{parse_id, session, text_field};
use crate::identity::repo;

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

#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// What the key is for, 1 to 100 characters.
    pub name: String,
    /// `ANALYST` for analytics tools (persisted queries only); `VIEWER` or `AGENT` for integrations.
    /// Keys never administer members, invitations or keys.
    pub role: Role,
}

#[derive(Default)]
pub struct ApiKeyQuery;

#[Object]
impl ApiKeyQuery {
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

#[derive(Default)]
pub struct ApiKeyMutation;

#[Object]
impl ApiKeyMutation {
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

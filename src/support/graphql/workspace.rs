//! Workspaces: the desks inside an organization (`workspaces`, `workspace`, `createWorkspace`).

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::authz::Object as Obj;
use crate::error::{AppError, AppResult};
use crate::graphql::{parse_id, session, text_field};
use crate::support::repo::{self};

/// A desk inside an organization (e.g. "Billing"); tickets belong to one.
#[derive(SimpleObject, Clone, Debug)]
pub struct Workspace {
    pub id: ID,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<repo::WorkspaceRow> for Workspace {
    fn from(row: repo::WorkspaceRow) -> Self {
        Self {
            id: row.id.into(),
            name: row.name,
            created_at: row.created_at,
        }
    }
}

#[derive(InputObject)]
pub struct CreateWorkspaceInput {
    /// 1 to 100 characters, unique in the organization.
    pub name: String,
}

#[derive(Default)]
pub struct WorkspaceQuery;

#[Object]
impl WorkspaceQuery {
    /// The organization's workspaces, by name.
    async fn workspaces(&self, ctx: &Context<'_>) -> AppResult<Vec<Workspace>> {
        let s = session(ctx)?;
        s.require(Obj::Workspace, "read")?;
        Ok(repo::workspaces(&s.tx)
            .await?
            .into_iter()
            .map(Workspace::from)
            .collect())
    }

    async fn workspace(&self, ctx: &Context<'_>, id: ID) -> AppResult<Workspace> {
        let s = session(ctx)?;
        s.require(Obj::Workspace, "read")?;
        let id = parse_id("id", &id)?;
        let rows = repo::workspaces_by_ids(&s.tx, &[id]).await?;
        rows.into_iter()
            .next()
            .map(Workspace::from)
            .ok_or(AppError::NotFound("workspace"))
    }
}

#[derive(Default)]
pub struct WorkspaceMutation;

#[Object]
impl WorkspaceMutation {
    /// Creates a workspace (owners and admins).
    async fn create_workspace(
        &self,
        ctx: &Context<'_>,
        input: CreateWorkspaceInput,
    ) -> AppResult<Workspace> {
        let s = session(ctx)?;
        s.require(Obj::Workspace, "create")?;
        let name = text_field("name", &input.name, 1, 100)?;
        Ok(repo::insert_workspace(&s.tx, &name).await?.into())
    }
}

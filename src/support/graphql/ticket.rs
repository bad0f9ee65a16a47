//! Tickets: the `Ticket` type, listing with filters, order and cursors, filing and updating.
//!
//! `Ticket` is where the GraphQL type graph crosses into `ai` (its analyses and similar tickets):
//! the one place a module below `ai` names it.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::comment::{CommentConnection, CommentEdge};
use super::workspace::Workspace;
// The one import of a module above support: the type graph (`analysis`, `similarTickets`).
use crate::ai::graphql::{self as ai_graphql, SimilarTicket, TicketAnalysis};
use crate::authz::{Object as Obj, Role};
use crate::error::{AppError, AppResult};
use crate::graphql::input::parse_opt_id;
use crate::graphql::loader::LoadError;
use crate::graphql::pagination::{self, Cursor, PageInfo};
use crate::graphql::{Session, email_field, handle, parse_id, session, text_field};
use crate::identity::graphql::{User, load_user};
use crate::identity::loaders::UserKey;
use crate::support::loaders::{CommentCountKey, WorkspaceKey};
use crate::support::repo::{self, TicketChanges, TicketRow, TicketSort};
use crate::support::service::{self, TicketFollowUp};
use crate::support::{PrioritySource, TicketPriority, TicketStatus};

pub const TITLE_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 20_000;

/// A support request.
pub struct Ticket(pub TicketRow);

#[Object]
impl Ticket {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    /// Per-organization number (#1, #2, …).
    async fn number(&self) -> i64 {
        self.0.number
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    async fn status(&self) -> TicketStatus {
        self.0.status
    }
    async fn priority(&self) -> TicketPriority {
        self.0.priority
    }
    /// Who chose the priority: the AI changes it only while no person has.
    async fn priority_source(&self) -> PrioritySource {
        self.0.priority_source
    }
    /// E-mail address of the customer who asked.
    async fn requester_email(&self) -> Option<&str> {
        self.0.requester_email.as_deref()
    }
    async fn workspace(&self, ctx: &Context<'_>) -> AppResult<Workspace> {
        let ws = session(ctx)?
            .loader
            .load_one(WorkspaceKey(self.0.workspace_id))
            .await
            .map_err(AppError::from)?;
        ws.map(Workspace::from)
            .ok_or_else(|| anyhow::anyhow!("ticket's workspace is missing").into())
    }
    /// The member working on it, if any.
    async fn assignee(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        load_user(ctx, self.0.assignee_id).await
    }
    /// The member who filed it, when a person did.
    async fn created_by(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        load_user(ctx, self.0.created_by).await
    }
    /// Comments, oldest first.
    #[graphql(complexity = "pagination::page_complexity(first, child_complexity)")]
    async fn comments(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last comment of the previous page.")] after: Option<String>,
    ) -> AppResult<CommentConnection> {
        let s = session(ctx)?;
        s.require(Obj::Comment, "read")?;
        let limit = pagination::page_size(first)?;
        let after = Cursor::decode_time(after.as_deref())?;
        let rows = repo::comments_page(&s.tx, self.0.id, after, limit + 1).await?;
        let (edges, page_info) = pagination::page(rows, limit, after.is_some(), |c| {
            Cursor::at_time(c.created_at, c.id)
        });
        Ok(CommentConnection {
            edges: edges
                .into_iter()
                .map(|(cursor, c)| CommentEdge {
                    cursor,
                    node: c.into(),
                })
                .collect(),
            page_info,
        })
    }
    /// Number of comments (batched across a list of tickets).
    async fn comment_count(&self, ctx: &Context<'_>) -> AppResult<i64> {
        // A count is a property of the ticket, readable wherever the ticket is (analyst exports
        // included); the comments themselves need `comment read`.
        Ok(session(ctx)?
            .loader
            .load_one(CommentCountKey(self.0.id))
            .await
            .map_err(AppError::from)?
            .unwrap_or(0))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// When it was last resolved or closed; null while open or pending.
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }
    /// The latest AI analysis (batched across a list of tickets); null before the first.
    async fn analysis(&self, ctx: &Context<'_>) -> AppResult<Option<TicketAnalysis>> {
        ai_graphql::latest(ctx, self.0.id).await
    }
    /// Every AI analysis of the ticket, newest first.
    #[graphql(
        complexity = "pagination::list_complexity(first, pagination::MAX_PAGE_SIZE, child_complexity)"
    )]
    async fn analyses(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, desc = "How many, 1 to 100.")] first: i32,
    ) -> AppResult<Vec<TicketAnalysis>> {
        ai_graphql::history(ctx, self.0.id, first).await
    }
    /// Tickets like this one (Qdrant vectors when configured, else full-text search), best first,
    /// only among `statuses` (all statuses when empty).
    #[graphql(
        complexity = "20 + pagination::list_complexity(limit, ai_graphql::SIMILAR_MAX, child_complexity)"
    )]
    async fn similar_tickets(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 5, desc = "How many, 1 to 20.")] limit: i32,
        #[graphql(default_with = "vec![TicketStatus::Resolved, TicketStatus::Closed]")]
        statuses: Vec<TicketStatus>,
    ) -> AppResult<Vec<SimilarTicket>> {
        ai_graphql::similar_tickets(ctx, self.0.id, limit, &statuses).await
    }
}

#[derive(SimpleObject)]
pub struct TicketEdge {
    pub cursor: String,
    pub node: Ticket,
}

pub struct TicketConnection {
    edges: Vec<TicketEdge>,
    page_info: PageInfo,
    filter: repo::TicketQuery,
}

#[Object]
impl TicketConnection {
    async fn edges(&self) -> &[TicketEdge] {
        &self.edges
    }
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }
    /// Number of tickets matching the filter (counted only when asked for).
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<i64> {
        repo::count_tickets(&session(ctx)?.tx, &self.filter).await
    }
}

/// Narrows a ticket list; all fields combine with AND.
#[derive(InputObject, Default)]
pub struct TicketFilter {
    pub workspace_id: Option<ID>,
    pub status: Option<TicketStatus>,
    pub priority: Option<TicketPriority>,
    pub assignee_id: Option<ID>,
    /// Full-text search over title and description, web-search syntax (`"exact phrase"`, `or`, `-word`).
    pub search: Option<String>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum TicketOrderField {
    #[default]
    CreatedAt,
    UpdatedAt,
    Number,
    Priority,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderDirection {
    Asc,
    #[default]
    Desc,
}

/// Order of a ticket list (default: newest first).
#[derive(InputObject, Default)]
pub struct TicketOrder {
    #[graphql(default)]
    pub field: TicketOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

#[derive(InputObject)]
pub struct CreateTicketInput {
    pub workspace_id: ID,
    /// 1 to 200 characters.
    pub title: String,
    /// Up to 20,000 characters.
    #[graphql(default)]
    pub description: String,
    pub requester_email: Option<String>,
    /// Left out: MEDIUM until the AI analysis proposes one. Given: a person's choice, which the AI
    /// never overrides.
    pub priority: Option<TicketPriority>,
}

/// Fields left out stay as they are; `assigneeId: null` unassigns.
#[derive(InputObject)]
pub struct UpdateTicketInput {
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<TicketStatus>,
    pub priority: Option<TicketPriority>,
    pub assignee_id: MaybeUndefined<ID>,
}

/// Loads, in one batch per key type, what the selection will ask of a page of tickets, so that the
/// number of statements does not depend on the page size (the DataLoader's time window alone would
/// split a slow-to-resolve page into several batches).
async fn prefetch(ctx: &Context<'_>, rows: &[TicketRow]) -> AppResult<()> {
    let node = ctx.look_ahead().field("edges").field("node");
    let loader = &session(ctx)?.loader;
    let workspaces = async {
        if node.field("workspace").exists() {
            loader
                .load_many(rows.iter().map(|t| WorkspaceKey(t.workspace_id)))
                .await?;
        }
        Ok::<_, LoadError>(())
    };
    let users = async {
        let mut ids = Vec::new();
        if node.field("assignee").exists() {
            ids.extend(rows.iter().filter_map(|t| t.assignee_id));
        }
        if node.field("createdBy").exists() {
            ids.extend(rows.iter().filter_map(|t| t.created_by));
        }
        if !ids.is_empty() {
            loader.load_many(ids.into_iter().map(UserKey)).await?;
        }
        Ok(())
    };
    let counts = async {
        if node.field("commentCount").exists() {
            loader
                .load_many(rows.iter().map(|t| CommentCountKey(t.id)))
                .await?;
        }
        Ok(())
    };
    let analyses = async {
        if node.field("analysis").exists() {
            ai_graphql::prefetch_latest(loader, rows.iter().map(|t| t.id)).await?;
        }
        Ok(())
    };
    tokio::try_join!(workspaces, users, counts, analyses)?;
    Ok(())
}

/// Tickets are assigned to owners, admins and agents of the organization only.
async fn check_assignable(s: &Session, user: Uuid) -> AppResult<()> {
    let member = crate::identity::repo::member(&s.tx, user).await?;
    match member.map(|m| m.role) {
        Some(Role::Owner | Role::Admin | Role::Agent) => Ok(()),
        _ => Err(AppError::invalid_field(
            "assigneeId",
            "the assignee must be an owner, admin or agent of this organization",
        )),
    }
}

#[derive(Default)]
pub struct TicketQuery;

#[Object]
impl TicketQuery {
    /// One ticket. Another organization's ticket is NOT_FOUND, exactly like one that does not exist.
    async fn ticket(&self, ctx: &Context<'_>, id: ID) -> AppResult<Ticket> {
        let s = session(ctx)?;
        s.require(Obj::Ticket, "read")?;
        let id = parse_id("id", &id)?;
        repo::ticket(&s.tx, id)
            .await?
            .map(Ticket)
            .ok_or(AppError::NotFound("ticket"))
    }

    /// Tickets, newest first unless `orderBy` says otherwise.
    #[graphql(complexity = "pagination::page_complexity(first, child_complexity)")]
    async fn tickets(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last ticket of the previous page.")] after: Option<String>,
        #[graphql(desc = "Only tickets matching all of these.")] filter: Option<TicketFilter>,
        #[graphql(desc = "Default: newest first.")] order_by: Option<TicketOrder>,
    ) -> AppResult<TicketConnection> {
        let s = session(ctx)?;
        s.require(Obj::Ticket, "read")?;
        let limit = pagination::page_size(first)?;
        let cursor = Cursor::decode_opt(after.as_deref())?;
        let filter = filter.unwrap_or_default();
        let query = repo::TicketQuery {
            workspace_id: parse_opt_id("workspaceId", filter.workspace_id.as_ref())?,
            status: filter.status,
            priority: filter.priority,
            assignee_id: parse_opt_id("assigneeId", filter.assignee_id.as_ref())?,
            search: filter
                .search
                .as_deref()
                .map(|q| text_field("search", q, 0, 200))
                .transpose()?
                .filter(|q| !q.is_empty()),
        };
        let order = order_by.unwrap_or_default();
        let sort = match order.field {
            TicketOrderField::CreatedAt => TicketSort::CreatedAt,
            TicketOrderField::UpdatedAt => TicketSort::UpdatedAt,
            TicketOrderField::Number => TicketSort::Number,
            TicketOrderField::Priority => TicketSort::Priority,
        };
        let after = cursor
            .map(|c| Ok::<_, AppError>((sort.parse_key(&c.key)?, c.id)))
            .transpose()?;
        let rows = repo::tickets_page(
            &s.tx,
            &query,
            sort,
            order.direction == OrderDirection::Desc,
            after,
            limit + 1,
        )
        .await?;
        prefetch(ctx, &rows).await?;
        let (edges, page_info) = pagination::page(rows, limit, after.is_some(), |t| Cursor {
            key: sort.cursor_key(t),
            id: t.id,
        });
        Ok(TicketConnection {
            edges: edges
                .into_iter()
                .map(|(cursor, t)| TicketEdge {
                    cursor,
                    node: Ticket(t),
                })
                .collect(),
            page_info,
            filter: query,
        })
    }
}

#[derive(Default)]
pub struct TicketMutation;

#[Object]
impl TicketMutation {
    /// Files a ticket in a workspace.
    async fn create_ticket(
        &self,
        ctx: &Context<'_>,
        input: CreateTicketInput,
    ) -> AppResult<Ticket> {
        let s = session(ctx)?;
        s.require(Obj::Ticket, "create")?;
        let workspace_id = parse_id("workspaceId", &input.workspace_id)?;
        let title = text_field("title", &input.title, 1, TITLE_MAX)?;
        let description = text_field("description", &input.description, 0, DESCRIPTION_MAX)?;
        let requester_email = input
            .requester_email
            .as_deref()
            .map(|e| email_field("requesterEmail", e))
            .transpose()?;
        let follow_up = handle::<Arc<dyn TicketFollowUp>>(ctx)?;
        // Paid for and queued in this transaction: the ticket and its analysis commit together.
        let row = service::file_ticket(
            &s.tx,
            follow_up.as_ref(),
            &repo::NewTicket {
                workspace_id,
                title: &title,
                description: &description,
                requester_email: requester_email.as_deref(),
                priority: input.priority.unwrap_or(TicketPriority::Medium),
                priority_source: if input.priority.is_some() {
                    PrioritySource::Human
                } else {
                    PrioritySource::Default
                },
                status: TicketStatus::Open,
                assignee_id: None,
                created_by: s.context().user_id,
            },
        )
        .await?;
        Ok(Ticket(row))
    }

    /// Changes a ticket's fields, status or assignee.
    async fn update_ticket(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateTicketInput,
    ) -> AppResult<Ticket> {
        let s = session(ctx)?;
        s.require(Obj::Ticket, "update")?;
        let id = parse_id("id", &id)?;
        let assignee = match &input.assignee_id {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(raw) => {
                let user = parse_id("assigneeId", raw)?;
                check_assignable(s, user).await?;
                Some(Some(user))
            }
        };
        let changes = TicketChanges {
            title: input
                .title
                .as_deref()
                .map(|t| text_field("title", t, 1, TITLE_MAX))
                .transpose()?,
            description: input
                .description
                .as_deref()
                .map(|d| text_field("description", d, 0, DESCRIPTION_MAX))
                .transpose()?,
            status: input.status,
            priority: input.priority,
            assignee,
        };
        // The text before the edit, read only when the input touches it (to re-embed real changes).
        let before = if changes.title.is_some() || changes.description.is_some() {
            repo::ticket(&s.tx, id)
                .await?
                .map(|t| (t.title, t.description))
        } else {
            None
        };
        let row = repo::update_ticket(&s.tx, id, &changes)
            .await?
            .ok_or(AppError::NotFound("ticket"))?;
        if changes.status.is_some() {
            // Similar-ticket searches filter on status: keep the vector's payload current.
            handle::<Arc<dyn TicketFollowUp>>(ctx)?
                .status_changed(&s.tx, row.id)
                .await?;
        }
        if before.is_some_and(|(title, description)| {
            title != row.title || description != row.description
        }) {
            // Similar tickets compare texts: the ticket's embedding follows its new text.
            handle::<Arc<dyn TicketFollowUp>>(ctx)?
                .text_changed(&s.tx, row.id)
                .await?;
        }
        Ok(Ticket(row))
    }
}

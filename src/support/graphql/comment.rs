//! Comments: replies and internal notes on a ticket.

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::authz::Object as Obj;
use crate::error::AppResult;
use crate::graphql::pagination::PageInfo;
use crate::graphql::{parse_id, session, text_field};
use crate::identity::graphql::{User, load_user};
use crate::support::repo::{self};

pub const COMMENT_MAX: usize = 20_000;

/// A reply or note on a ticket.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct Comment {
    pub id: ID,
    pub body: String,
    /// Internal notes are for the team only (owners, admins, agents; not viewers or analyst keys)
    /// and never sent to the requester.
    pub internal: bool,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub ticket_id: Uuid,
    #[graphql(skip)]
    pub author_id: Option<Uuid>,
    /// The API key that wrote it, when an integration did.
    pub api_key_id: Option<ID>,
}

#[ComplexObject]
impl Comment {
    /// The member who wrote it (null for API keys and for people no longer in the organization).
    async fn author(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        load_user(ctx, self.author_id).await
    }
    async fn ticket_id(&self) -> ID {
        self.ticket_id.into()
    }
}

impl From<repo::CommentRow> for Comment {
    fn from(row: repo::CommentRow) -> Self {
        Self {
            id: row.id.into(),
            body: row.body,
            internal: row.internal,
            created_at: row.created_at,
            ticket_id: row.ticket_id,
            author_id: row.author_id,
            api_key_id: row.api_key_id.map(ID::from),
        }
    }
}

#[derive(SimpleObject)]
pub struct CommentEdge {
    pub cursor: String,
    pub node: Comment,
}

#[derive(SimpleObject)]
pub struct CommentConnection {
    pub edges: Vec<CommentEdge>,
    pub page_info: PageInfo,
}

#[derive(InputObject)]
pub struct AddCommentInput {
    pub ticket_id: ID,
    /// 1 to 20,000 characters.
    pub body: String,
    /// Internal notes are visible to the team only.
    #[graphql(default)]
    pub internal: bool,
}

#[derive(Default)]
pub struct CommentMutation;

#[Object]
impl CommentMutation {
    /// Adds a public reply or an internal note to a ticket.
    async fn add_comment(&self, ctx: &Context<'_>, input: AddCommentInput) -> AppResult<Comment> {
        let s = session(ctx)?;
        s.require(Obj::Comment, "create")?;
        let ticket_id = parse_id("ticketId", &input.ticket_id)?;
        let body = text_field("body", &input.body, 1, COMMENT_MAX)?;
        let c = s.context();
        Ok(repo::insert_comment(
            &s.tx,
            ticket_id,
            c.user_id,
            c.api_key_id,
            &body,
            input.internal,
        )
        .await?
        .into())
    }
}

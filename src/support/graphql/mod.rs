//! GraphQL types and resolvers for the support desk, one file per aggregate: [`workspace`],
//! [`ticket`] and [`comment`]. The module's query and mutation parts are merged here in the order the
//! schema lists their fields.

pub mod comment;
pub mod ticket;
pub mod workspace;

use async_graphql::MergedObject;

pub use comment::{Comment, CommentConnection};
pub use ticket::{Ticket, TicketConnection};
pub use workspace::Workspace;

#[derive(MergedObject, Default)]
pub struct SupportQuery(workspace::WorkspaceQuery, ticket::TicketQuery);

#[derive(MergedObject, Default)]
pub struct SupportMutation(
    workspace::WorkspaceMutation,
    ticket::TicketMutation,
    comment::CommentMutation,
);

//! GraphQL types and resolvers for the support desk, one file per aggregate: [`workspace`],
//! [`ticket`], [`comment`], and the live [`events`]. The module's query, mutation and subscription parts are merged here in the order the
//! schema lists their fields.

pub mod comment;
pub mod events;
pub mod ticket;
pub mod workspace;

use async_graphql::{MergedObject, MergedSubscription};

pub use comment::{Comment, CommentConnection};
pub use events::{TicketEvent, TicketEventFilter};
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

#[derive(MergedSubscription, Default)]
pub struct SupportSubscription(events::TicketSubscription);

//! The live desk: `subscription { ticketEvents }`. The server hands each delivery a [`LiveBatch`] of
//! announced ids; this resolver re-reads them through the operation's session (the subscriber's own
//! tenant transaction, opened afresh for every delivery), so row level security decides what a
//! subscriber hears exactly as for a query.

use std::collections::HashSet;

use async_graphql::{Context, ID, InputObject, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use uuid::Uuid;

use super::comment::Comment;
use super::ticket::Ticket;
use crate::authz::Object as Obj;
use crate::error::AppError;
use crate::graphql::input::parse_opt_id;
use crate::graphql::{handle, session};
use crate::support::events::{EventKind, Interest, InterestSlot, LiveBatch};
use crate::support::loaders::{CommentKey, TicketKey};

/// Which events a subscription wants; every field narrows (all given must match).
#[derive(InputObject, Default)]
pub struct TicketEventFilter {
    /// Only tickets of this workspace.
    pub workspace_id: Option<ID>,
    /// Only this ticket.
    pub ticket_id: Option<ID>,
    /// Only these kinds (`RESYNC` is always sent).
    pub kinds: Option<Vec<EventKind>>,
}

/// A change to a ticket the subscriber may read, re-read as the subscriber when it is delivered.
#[derive(SimpleObject)]
pub struct TicketEvent {
    pub kind: EventKind,
    /// When the change was written.
    pub occurred_at: DateTime<Utc>,
    /// The ticket as it is now (null for `RESYNC`).
    pub ticket: Option<Ticket>,
    /// The comment added, for `COMMENTED`; null when the subscriber may not read it (an internal
    /// note, for viewers).
    pub comment: Option<Comment>,
}

#[derive(Default)]
pub struct TicketSubscription;

#[Subscription]
impl TicketSubscription {
    /// Changes to the organization's tickets as they commit: filed, updated, commented, analysed.
    /// Only tickets the caller may read are delivered, each re-read at delivery; bursts on one ticket
    /// within a few tens of milliseconds arrive as one event of each kind. Over the websocket at `/graphql`
    /// (graphql-transport-ws or graphql-ws), credentials in `connection_init`.
    async fn ticket_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<TicketEventFilter>,
    ) -> Result<impl Stream<Item = TicketEvent> + use<>, AppError> {
        let s = session(ctx)?;
        s.require(Obj::Ticket, "read")?;
        let filter = filter.unwrap_or_default();
        let workspace = parse_opt_id("filter.workspaceId", filter.workspace_id.as_ref())?;
        let interest = Interest {
            ticket_id: parse_opt_id("filter.ticketId", filter.ticket_id.as_ref())?,
            kinds: filter.kinds,
        };
        if let Ok(slot) = handle::<InterestSlot>(ctx) {
            slot.set(interest.clone());
        }
        let batch = handle::<LiveBatch>(ctx)?;
        let wanted: Vec<_> = batch.0.iter().filter(|e| interest.matches(e)).collect();
        let ticket_ids: HashSet<Uuid> = wanted.iter().filter_map(|e| e.ticket_id).collect();
        let comment_ids: HashSet<Uuid> = wanted.iter().filter_map(|e| e.comment_id).collect();
        let (tickets, mut comments) = futures_util::try_join!(
            s.loader.load_many(ticket_ids.into_iter().map(TicketKey)),
            s.loader.load_many(comment_ids.into_iter().map(CommentKey)),
        )?;
        let mut events = Vec::with_capacity(wanted.len());
        for event in wanted {
            let ticket = match event.ticket_id {
                None => None,
                // Not readable (any more), or not of the workspace asked for: not delivered.
                Some(id) => match tickets.get(&TicketKey(id)) {
                    Some(t) if workspace.is_none_or(|w| w == t.workspace_id) => Some(t.clone()),
                    _ => continue,
                },
            };
            let comment = event
                .comment_id
                .and_then(|id| comments.remove(&CommentKey(id)))
                .map(Comment::from);
            events.push(TicketEvent {
                kind: event.kind,
                occurred_at: event.occurred_at,
                ticket: ticket.map(Ticket),
                comment,
            });
        }
        Ok(futures_util::stream::iter(events))
    }
}

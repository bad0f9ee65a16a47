//! Live events: what the database announces on `deskgraph_live` when a ticket changes, and what a
//! subscription asks to hear. An event carries ids only; subscribers re-read the rows in their own
//! tenant transaction (`support::graphql::events`), so row level security decides what they see.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

/// The PostgreSQL channel the triggers of `V8__live_events.sql` notify.
pub const CHANNEL: &str = "deskgraph_live";

/// What happened to a ticket.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[graphql(name = "TicketEventKind")]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A ticket was filed.
    Created,
    /// A ticket changed (status, priority, assignee, title, description, …).
    Updated,
    /// A comment was added (`comment` is it, when the subscriber may read it).
    Commented,
    /// An analysis run finished, done or failed (`ticket.analysis` shows it).
    Analyzed,
    /// The server may have missed changes (its connection to the database was lost and is back):
    /// refetch what you show. `ticket` and `comment` are null.
    Resync,
}

/// One change, as announced (ids only).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    pub kind: EventKind,
    pub ticket_id: Option<Uuid>,
    pub comment_id: Option<Uuid>,
    pub occurred_at: DateTime<Utc>,
}

impl LiveEvent {
    pub fn resync() -> Self {
        Self {
            kind: EventKind::Resync,
            ticket_id: None,
            comment_id: None,
            occurred_at: Utc::now(),
        }
    }
}

/// A notification's payload: `{"org_id", "kind", "ticket_id", "comment_id", "at"}`.
#[derive(Deserialize)]
struct Payload {
    org_id: Uuid,
    kind: EventKind,
    ticket_id: Uuid,
    comment_id: Option<Uuid>,
    at: DateTime<Utc>,
}

/// Reads a `deskgraph_live` payload into the organization and the event; `None` for anything else.
pub fn parse_notification(payload: &str) -> Option<(Uuid, LiveEvent)> {
    let p: Payload = serde_json::from_str(payload).ok()?;
    if p.kind == EventKind::Resync {
        return None;
    }
    Some((
        p.org_id,
        LiveEvent {
            kind: p.kind,
            ticket_id: Some(p.ticket_id),
            comment_id: p.comment_id,
            occurred_at: p.at,
        },
    ))
}

/// Merges a burst: one event per ticket and kind (the latest time), every comment stays, and one
/// RESYNC stands for all. A ticket created and changed in one burst keeps both kinds, so a
/// subscription to `UPDATED` alone still hears of the change. Order: first appearance.
pub fn coalesce(events: Vec<LiveEvent>) -> Vec<LiveEvent> {
    let mut out: Vec<LiveEvent> = Vec::with_capacity(events.len());
    let mut index: HashMap<(EventKind, Option<Uuid>, Option<Uuid>), usize> = HashMap::new();
    for event in events {
        let kind = event.kind;
        let key = match kind {
            EventKind::Resync => (kind, None, None),
            EventKind::Commented => (kind, event.ticket_id, event.comment_id),
            _ => (kind, event.ticket_id, None),
        };
        match index.get(&key) {
            Some(&i) => {
                if event.occurred_at > out[i].occurred_at {
                    out[i].occurred_at = event.occurred_at;
                }
            }
            None => {
                index.insert(key, out.len());
                out.push(event);
            }
        }
    }
    out
}

/// The events one delivery re-reads, handed to the `ticketEvents` resolver as operation data.
#[derive(Debug, Clone, Default)]
pub struct LiveBatch(pub Arc<[LiveEvent]>);

/// What a subscription listens for, as far as the ids of an event tell (the workspace needs the
/// re-read). RESYNC concerns everyone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interest {
    pub ticket_id: Option<Uuid>,
    pub kinds: Option<Vec<EventKind>>,
}

impl Interest {
    pub fn matches(&self, event: &LiveEvent) -> bool {
        event.kind == EventKind::Resync
            || (self.ticket_id.is_none_or(|t| event.ticket_id == Some(t))
                && self.kinds.as_ref().is_none_or(|k| k.contains(&event.kind)))
    }
}

/// Where the resolver leaves the subscription's [`Interest`] when the subscription starts, so the
/// server can skip events nobody asked for before re-reading anything.
#[derive(Debug, Default, Clone)]
pub struct InterestSlot(Arc<Mutex<Option<Interest>>>);

impl InterestSlot {
    pub fn set(&self, interest: Interest) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(interest);
        }
    }

    pub fn take(&self) -> Option<Interest> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn event(kind: EventKind, ticket: u128, comment: Option<u128>, ms: i64) -> LiveEvent {
        LiveEvent {
            kind,
            ticket_id: Some(Uuid::from_u128(ticket)),
            comment_id: comment.map(Uuid::from_u128),
            occurred_at: DateTime::from_timestamp_millis(ms).unwrap(),
        }
    }

    #[test]
    fn a_notification_is_read_and_anything_else_is_ignored() {
        let payload = r#"{"org_id":"00000000-0000-0000-0000-000000000001","kind":"commented","ticket_id":"00000000-0000-0000-0000-000000000002","comment_id":"00000000-0000-0000-0000-000000000003","at":"2026-12-01T14:00:00.123456+00:00"}"#;
        let (org, e) = parse_notification(payload).unwrap();
        assert_eq!(org, Uuid::from_u128(1));
        assert_eq!(e.kind, EventKind::Commented);
        assert_eq!(e.comment_id, Some(Uuid::from_u128(3)));
        assert_eq!(e.occurred_at.timestamp_subsec_micros(), 123_456);
        assert!(parse_notification("").is_none());
        assert!(parse_notification(&payload.replace("commented", "resync")).is_none());
        assert!(parse_notification(&payload.replace("commented", "dropped")).is_none());
    }

    #[test]
    fn bursts_merge_per_ticket_and_kind_but_comments_and_kinds_stay() {
        use EventKind::*;
        let merged = coalesce(vec![
            event(Updated, 1, None, 1),
            event(Commented, 1, Some(10), 2),
            event(Updated, 1, None, 3),
            event(Commented, 1, Some(11), 4),
            event(Created, 2, None, 5),
            event(Updated, 2, None, 6),
            event(Analyzed, 1, None, 7),
            LiveEvent::resync(),
            LiveEvent::resync(),
        ]);
        let kinds: Vec<_> = merged.iter().map(|e| (e.kind, e.ticket_id)).collect();
        assert_eq!(
            kinds,
            vec![
                (Updated, Some(Uuid::from_u128(1))),
                (Commented, Some(Uuid::from_u128(1))),
                (Commented, Some(Uuid::from_u128(1))),
                (Created, Some(Uuid::from_u128(2))),
                (Updated, Some(Uuid::from_u128(2))),
                (Analyzed, Some(Uuid::from_u128(1))),
                (Resync, None),
            ]
        );
        // The merged event carries the latest time of its burst.
        assert_eq!(merged[0].occurred_at.timestamp_millis(), 3);
        assert_eq!(merged[3].occurred_at.timestamp_millis(), 5);
        assert_eq!(merged[4].occurred_at.timestamp_millis(), 6);
    }

    #[test]
    fn interest_filters_by_ticket_and_kind_but_never_drops_resync() {
        let interest = Interest {
            ticket_id: Some(Uuid::from_u128(1)),
            kinds: Some(vec![EventKind::Commented]),
        };
        assert!(interest.matches(&event(EventKind::Commented, 1, Some(2), 0)));
        assert!(!interest.matches(&event(EventKind::Updated, 1, None, 0)));
        assert!(!interest.matches(&event(EventKind::Commented, 2, Some(2), 0)));
        assert!(interest.matches(&LiveEvent::resync()));
        assert!(Interest::default().matches(&event(EventKind::Updated, 9, None, 0)));
    }
}

//! One websocket as the hub sees it: a bounded queue of messages to write, and a way to close it.

use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};

use crate::metrics::LiveMetrics;

/// Why the server closes a socket, and the close code clients act on (graphql-ws clients reconnect
/// on 1001 and 1013, and treat 4401 as "sign in again").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The token's `exp` passed: 4401.
    Expired,
    /// Credentials refused at `connection_init`, or access lost since (member removed, organization
    /// membership gone, API key revoked): 4403.
    Forbidden,
    /// The client read too slowly and its queue filled up: 1013 (try again later; refetch).
    SlowConsumer,
    /// The organization holds as many sockets on this instance as it may: 1013.
    TooMany,
    /// The database could not be reached to admit the socket: 1013.
    Unavailable,
    /// The server is stopping: 1001 (going away); reconnect, to another instance.
    Shutdown,
    /// No `connection_init` in time: 4408.
    InitTimeout,
}

impl Close {
    pub fn code(self) -> u16 {
        match self {
            Self::Expired => 4401,
            Self::Forbidden => 4403,
            Self::SlowConsumer | Self::TooMany | Self::Unavailable => 1013,
            Self::Shutdown => 1001,
            Self::InitTimeout => 4408,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::Expired => "Token expired",
            Self::Forbidden => "Forbidden",
            Self::SlowConsumer => "Too slow to read events; reconnect and refetch",
            Self::TooMany => "Too many connections for this organization",
            Self::Unavailable => "Service unavailable; try again later",
            Self::Shutdown => "Server shutting down",
            Self::InitTimeout => "Connection initialisation timeout",
        }
    }

    /// The `reason` label of `deskgraph_ws_closed_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Forbidden => "forbidden",
            Self::SlowConsumer => "slow_consumer",
            Self::TooMany => "too_many",
            Self::Unavailable => "unavailable",
            Self::Shutdown => "shutdown",
            Self::InitTimeout => "init_timeout",
        }
    }
}

/// A message for the socket, already serialised where it is shared between subscribers.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A result of operation `id`: `payload` is a GraphQL response as JSON.
    Next { id: Arc<str>, payload: Arc<str> },
    /// Operation `id` was refused before it ran: `errors` is a JSON array of GraphQL errors.
    Error { id: Arc<str>, errors: Arc<str> },
    /// Operation `id` has ended.
    Complete { id: Arc<str> },
}

impl Outgoing {
    /// The operation the message is for.
    pub fn id(&self) -> &Arc<str> {
        match self {
            Self::Next { id, .. } | Self::Error { id, .. } | Self::Complete { id } => id,
        }
    }
}

/// The hub's handle on one socket.
pub struct Conn {
    out: mpsc::Sender<Outgoing>,
    close: watch::Sender<Option<Close>>,
    metrics: LiveMetrics,
}

/// The socket task's ends of a [`Conn`]: the messages to write and the close request.
pub struct ConnEnds {
    pub outgoing: mpsc::Receiver<Outgoing>,
    pub close: watch::Receiver<Option<Close>>,
}

impl Conn {
    pub fn new(queue: usize, metrics: LiveMetrics) -> (Arc<Self>, ConnEnds) {
        let (out, outgoing) = mpsc::channel(queue.max(1));
        let (close, close_rx) = watch::channel(None);
        (
            Arc::new(Self {
                out,
                close,
                metrics,
            }),
            ConnEnds {
                outgoing,
                close: close_rx,
            },
        )
    }

    /// Queues an event message without waiting. A full queue means the client does not keep up:
    /// the message is dropped and the socket closed ([`Close::SlowConsumer`]), so a slow client
    /// costs a bounded amount of memory and learns it missed something.
    pub fn deliver(&self, message: Outgoing) {
        match self.out.try_send(message) {
            Ok(()) => {
                self.metrics.events_delivered.inc();
            }
            Err(TrySendError::Full(_)) => {
                self.metrics.events_dropped.inc();
                self.close(Close::SlowConsumer);
            }
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// Queues the reply to an operation the client sent, waiting for room (replies are bounded by
    /// the operations a socket may run at once).
    pub async fn reply(&self, message: Outgoing) {
        let _ = self.out.send(message).await;
    }

    /// Asks the socket task to close with `why`; the first reason wins.
    pub fn close(&self, why: Close) {
        self.close.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(why);
                true
            } else {
                false
            }
        });
    }
}

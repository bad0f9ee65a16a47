//! GraphQL over websockets on `/graphql`: `graphql-transport-ws` (the npm `graphql-ws` library that
//! Apollo Client, urql and Relay use) and the legacy `graphql-ws` (subscriptions-transport-ws).
//!
//! The protocol loop is written here rather than taken from async-graphql's `GraphQLWebSocket`,
//! because the contract needs what that handler cannot do: close with the protocols' own codes
//! (4403 refused, 4408 no init, 4401 before the ack, 4409 duplicate id, 4429 second init), close
//! from the server's side (token expired, access lost, slow consumer, shutdown), bound each socket's
//! queue and operations, and run every operation through the tenant transaction of the caller. It
//! reuses async-graphql's parsing of client messages.
//!
//! Close codes: 4400 invalid message, 4401 token expired (or subscribe before the ack), 4403
//! credentials refused or access lost, 4406 no supported subprotocol, 4408 no `connection_init`
//! in time, 4409 id already in use, 4429 second `connection_init`, 1013 slow consumer / too many
//! sockets for the organization / database unavailable, 1001 server stopping.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::{
    ALL_WEBSOCKET_PROTOCOLS, ClientMessage, WebSocketProtocols as Protocols,
};
use async_graphql::parser::types::OperationType;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;

use super::{AppState, header_str};
use crate::error::AppError;
use crate::identity::auth::{Authenticated, authenticate};
use crate::live::{Close, Conn, ConnEnds, Hub, Outgoing};
use crate::schema::executor::operation_type;

/// How long one write may wait for a client that does not read before the socket is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The upgrade request's own credentials, used when `connection_init` carries none.
struct UpgradeHeaders {
    authorization: Option<String>,
    org: Option<String>,
}

pub(super) fn upgrade(state: Arc<AppState>, headers: &HeaderMap, ws: WebSocketUpgrade) -> Response {
    // Clients send small messages (subscribe, ping, complete): a 4 KiB read buffer instead of the
    // default 128 KiB, which tungstenite keeps filled per socket (about 145 KB a socket measured with
    // 2,000 sockets by tests/bench/live.sh).
    let ws = ws
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(4096)
        .max_message_size(state.max_body_bytes);
    let protocol = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(|p| Protocols::from_str(p).ok());
    let fallback = UpgradeHeaders {
        authorization: header_str(headers, "authorization").map(str::to_owned),
        org: header_str(headers, "x-org-id").map(str::to_owned),
    };
    ws.on_upgrade(move |socket| async move {
        let hub = state.hub.clone();
        let _open = hub.socket_opened();
        let (sink, stream) = socket.split();
        let mut socket = Socket {
            sink,
            stream,
            protocol: protocol.unwrap_or(Protocols::GraphQLWS),
            hub: &hub,
        };
        match protocol {
            Some(_) => socket.serve(&state, fallback).await,
            None => {
                socket
                    .close(4406, "Subprotocol not acceptable", "protocol")
                    .await
            }
        }
    })
}

/// An operation running on the socket; aborted (and a subscription ended) when dropped.
struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a message from the client asks the loop to do next.
enum Next {
    Continue,
    Close(u16, &'static str, &'static str),
    Closed,
}

struct Socket<'a> {
    sink: SplitSink<WebSocket, Message>,
    stream: SplitStream<WebSocket>,
    protocol: Protocols,
    hub: &'a Arc<Hub>,
}

impl Socket<'_> {
    fn legacy(&self) -> bool {
        self.protocol == Protocols::SubscriptionsTransportWS
    }

    async fn send(&mut self, text: String) -> bool {
        matches!(
            tokio::time::timeout(WRITE_TIMEOUT, self.sink.send(Message::Text(text.into()))).await,
            Ok(Ok(()))
        )
    }

    async fn close(&mut self, code: u16, reason: &'static str, label: &'static str) {
        self.hub.metrics().closed(label);
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(5), self.sink.send(frame)).await;
    }

    async fn close_for(&mut self, why: Close) {
        self.close(why.code(), why.reason(), why.label()).await;
    }

    /// Waits for `connection_init` (answering pings meanwhile) and returns its payload.
    async fn wait_for_init(&mut self) -> Result<Value, Next> {
        while let Some(message) = self.stream.next().await {
            let text = match message {
                Ok(Message::Text(text)) => text,
                Ok(Message::Close(_)) | Err(_) => return Err(Next::Closed),
                Ok(Message::Binary(_)) => return Err(invalid()),
                Ok(_) => continue,
            };
            match ClientMessage::from_bytes(text.as_bytes()) {
                Ok(ClientMessage::ConnectionInit { payload }) => {
                    return Ok(payload.unwrap_or_default());
                }
                Ok(ClientMessage::Ping { .. }) => {
                    if !self.send(r#"{"type":"pong"}"#.to_owned()).await {
                        return Err(Next::Closed);
                    }
                }
                Ok(ClientMessage::Start { .. }) => {
                    return Err(Next::Close(4401, "Unauthorized", "protocol"));
                }
                Ok(ClientMessage::ConnectionTerminate) => {
                    return Err(Next::Close(1000, "", "client"));
                }
                Ok(_) => {}
                Err(_) => return Err(invalid()),
            }
        }
        Err(Next::Closed)
    }

    async fn serve(&mut self, state: &AppState, fallback: UpgradeHeaders) {
        let cfg = *self.hub.config();
        let hub = self.hub;
        let init = tokio::time::timeout(
            Duration::from_secs(cfg.ws_init_timeout_secs),
            self.wait_for_init(),
        );
        // A socket that opens while the server stops is told to go elsewhere at once.
        let payload = tokio::select! {
            init = init => match init {
                Ok(Ok(payload)) => payload,
                Ok(Err(Next::Close(code, reason, label))) => return self.close(code, reason, label).await,
                Ok(Err(_)) => return,
                Err(_) => return self.close_for(Close::InitTimeout).await,
            },
            () = hub.stopped() => return self.close_for(Close::Shutdown).await,
        };
        let field = |name: &str| {
            payload.as_object().and_then(|fields| {
                fields
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .and_then(|(_, value)| value.as_str())
            })
        };
        let authorization = field("authorization").or(fallback.authorization.as_deref());
        let org = field("x-org-id").or(fallback.org.as_deref());
        let Authenticated {
            credentials,
            expires_at,
        } = match authenticate(&state.verifier, authorization, org).await {
            Ok(authenticated) => authenticated,
            Err(_) => return self.refuse(Close::Forbidden).await,
        };
        let _slot = match self.hub.connect(&credentials).await {
            Ok(slot) => slot,
            Err(why) => return self.refuse(why).await,
        };
        if !self.send(r#"{"type":"connection_ack"}"#.to_owned()).await {
            return;
        }
        if self.legacy() && !self.send(r#"{"type":"ka"}"#.to_owned()).await {
            return;
        }
        let (conn, ends) = Conn::new(cfg.ws_queue, self.hub.metrics().clone());
        let credentials = Arc::new(credentials);
        let expiry = expires_at.map(|exp| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            // At most a year ahead (an absurd `exp` must not overflow the clock).
            let left = exp.saturating_sub(now).min(365 * 24 * 3600);
            tokio::time::Instant::now() + Duration::from_secs(left)
        });
        self.run(&conn, ends, &credentials, expiry).await;
    }

    /// Refuses the socket before any ack: 4403 (or 1013); the legacy protocol hears why first.
    async fn refuse(&mut self, why: Close) {
        if self.legacy() {
            let message = serde_json::json!({
                "type": "connection_error",
                "payload": { "message": why.reason() },
            });
            let _ = self.send(message.to_string()).await;
        }
        self.close_for(why).await;
    }

    async fn run(
        &mut self,
        conn: &Arc<Conn>,
        ends: ConnEnds,
        credentials: &Arc<crate::db::Credentials>,
        expiry: Option<tokio::time::Instant>,
    ) {
        let ConnEnds {
            mut outgoing,
            mut close,
        } = ends;
        let cfg = *self.hub.config();
        let mut running: HashMap<Arc<str>, Running> = HashMap::new();
        let expired = async {
            match expiry {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        let period = Duration::from_secs(cfg.ws_keepalive_secs.max(1));
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let keepalive_on = cfg.ws_keepalive_secs > 0;
        let next = loop {
            let next = tokio::select! {
                biased;
                _ = close.changed() => match *close.borrow() {
                    Some(why) => Next::Close(why.code(), why.reason(), why.label()),
                    None => Next::Continue,
                },
                () = self.hub.stopped() => Next::Close(1001, Close::Shutdown.reason(), Close::Shutdown.label()),
                () = &mut expired => Next::Close(4401, Close::Expired.reason(), Close::Expired.label()),
                message = self.stream.next() => match message {
                    Some(Ok(Message::Text(text))) => self.handle(text.as_str(), conn, credentials, &mut running, cfg.ws_max_subscriptions).await,
                    Some(Ok(Message::Binary(_))) => invalid(),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Next::Closed,
                    Some(Ok(_)) => Next::Continue,
                },
                Some(message) = outgoing.recv() => {
                    // Only for the operation that queued it: not one the client completed since, nor
                    // a new one reusing its id (each operation holds its own `Arc` of the id).
                    let id = message.id();
                    let current = running.get_key_value(id).is_some_and(|(key, _)| Arc::ptr_eq(key, id));
                    if !current {
                        Next::Continue
                    } else {
                        if matches!(message, Outgoing::Error { .. } | Outgoing::Complete { .. }) {
                            running.remove(id);
                        }
                        if self.send(self.frame(&message)).await { Next::Continue } else { Next::Closed }
                    }
                },
                _ = keepalive.tick(), if keepalive_on => {
                    let ping = if self.legacy() { r#"{"type":"ka"}"# } else { r#"{"type":"ping"}"# };
                    if self.send(ping.to_owned()).await { Next::Continue } else { Next::Closed }
                },
            };
            if !matches!(next, Next::Continue) {
                break next;
            }
        };
        // End every operation before closing, so no more events are queued for this socket.
        running.clear();
        if let Next::Close(code, reason, label) = next {
            self.close(code, reason, label).await;
        }
    }

    /// Handles one client message.
    async fn handle(
        &mut self,
        text: &str,
        conn: &Arc<Conn>,
        credentials: &Arc<crate::db::Credentials>,
        running: &mut HashMap<Arc<str>, Running>,
        max_operations: usize,
    ) -> Next {
        let message = match ClientMessage::from_bytes(text.as_bytes()) {
            Ok(message) => message,
            Err(_) => return invalid(),
        };
        match message {
            ClientMessage::ConnectionInit { .. } => {
                Next::Close(4429, "Too many initialisation requests", "protocol")
            }
            ClientMessage::Start { id, payload } => {
                let id: Arc<str> = id.into();
                if running.contains_key(&id) {
                    return Next::Close(4409, "Subscriber for this id already exists", "protocol");
                }
                if running.len() >= max_operations {
                    let err = AppError::bad_input(format!(
                        "at most {max_operations} operations may run on one socket; complete one first"
                    ));
                    let errors =
                        serde_json::to_string(&[err.to_server_error()]).unwrap_or_default();
                    let refused = Outgoing::Error {
                        id,
                        errors: errors.into(),
                    };
                    return if self.send(self.frame(&refused)).await {
                        Next::Continue
                    } else {
                        Next::Closed
                    };
                }
                let task = tokio::spawn(operation(
                    self.hub.clone(),
                    conn.clone(),
                    credentials.clone(),
                    id.clone(),
                    payload,
                ));
                running.insert(id, Running(task));
                Next::Continue
            }
            ClientMessage::Stop { id } => {
                if running.remove(id.as_str()).is_some() && self.legacy() {
                    let done = self.frame(&Outgoing::Complete { id: id.into() });
                    if !self.send(done).await {
                        return Next::Closed;
                    }
                }
                Next::Continue
            }
            ClientMessage::ConnectionTerminate => Next::Close(1000, "", "client"),
            ClientMessage::Ping { .. } => {
                if self.send(r#"{"type":"pong"}"#.to_owned()).await {
                    Next::Continue
                } else {
                    Next::Closed
                }
            }
            ClientMessage::Pong { .. } => Next::Continue,
        }
    }

    /// The protocol's text for `message` (payloads are JSON already).
    fn frame(&self, message: &Outgoing) -> String {
        let quoted = |id: &str| serde_json::to_string(id).unwrap_or_else(|_| "\"\"".into());
        match message {
            Outgoing::Next { id, payload } => {
                let kind = if self.legacy() { "data" } else { "next" };
                format!(
                    r#"{{"type":"{kind}","id":{},"payload":{payload}}}"#,
                    quoted(id)
                )
            }
            Outgoing::Error { id, errors } => {
                format!(
                    r#"{{"type":"error","id":{},"payload":{errors}}}"#,
                    quoted(id)
                )
            }
            Outgoing::Complete { id } => format!(r#"{{"type":"complete","id":{}}}"#, quoted(id)),
        }
    }
}

fn invalid() -> Next {
    Next::Close(4400, "Invalid message received", "protocol")
}

/// Runs one operation of the socket: a subscription joins the hub until aborted; a query or
/// mutation runs like one sent over HTTP (its own tenant transaction), then completes.
async fn operation(
    hub: Arc<Hub>,
    conn: Arc<Conn>,
    credentials: Arc<crate::db::Credentials>,
    id: Arc<str>,
    mut request: async_graphql::Request,
) {
    let engine = hub.engine();
    let refused = |errors: &[async_graphql::ServerError]| {
        let errors = serde_json::to_string(errors).unwrap_or_else(|_| "[]".into());
        Outgoing::Error {
            id: id.clone(),
            errors: errors.into(),
        }
    };
    // A persisted operation's document is needed to tell what kind of operation it is.
    let kind = match engine.persisted.resolve(&mut request) {
        Err(err) => Err(vec![err.to_server_error()]),
        Ok(_) => operation_type(&request).map_err(|err| vec![err]),
    };
    match kind {
        Err(errors) => conn.reply(refused(&errors)).await,
        Ok(OperationType::Subscription) => {
            match hub
                .subscribe(&conn, &credentials, id.clone(), request)
                .await
            {
                Err(response) => conn.reply(refused(&response.errors)).await,
                Ok(subscription) => {
                    // Lives until the client completes it or the socket closes (the task is aborted).
                    std::future::pending::<()>().await;
                    drop(subscription);
                }
            }
        }
        Ok(_) => {
            // The operation's own request id, as for an HTTP request (logs, audit and ledger).
            let request_id = uuid::Uuid::now_v7().to_string();
            let outcome = engine
                .execute(
                    (*credentials).clone(),
                    request,
                    false,
                    Some(&request_id),
                    None,
                )
                .await;
            match serde_json::to_string(&outcome.response) {
                Ok(payload) => {
                    conn.reply(Outgoing::Next {
                        id: id.clone(),
                        payload: payload.into(),
                    })
                    .await;
                }
                Err(err) => tracing::error!(error = %err, "cannot serialise a response"),
            }
            conn.reply(Outgoing::Complete { id }).await;
        }
    }
}

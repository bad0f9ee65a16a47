//! A small websocket client for the live (subscription) tests: both GraphQL-over-websocket
//! subprotocols, keep-alives skipped (and `ping` answered), every text frame checked for leaked
//! internals, and waits that fail after a timeout instead of hanging.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::common::{Caller, assert_no_internals};

/// How long a wait for an expected message lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws` (the npm `graphql-ws` protocol).
    TransportWs,
    /// `graphql-ws` (the legacy subscriptions-transport-ws protocol).
    Legacy,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::TransportWs => "graphql-transport-ws",
            Protocol::Legacy => "graphql-ws",
        }
    }
}

/// What the socket said, keep-alives aside.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A text frame, parsed.
    Json(Value),
    /// A close frame: code and reason (1005 when the frame carried no code).
    Close(u16, String),
    /// The stream ended (or failed) without a close frame.
    End(String),
}

pub struct WsClient {
    stream: WebSocketStream<TcpStream>,
    pub protocol: Protocol,
    /// Operation messages read while waiting for something else.
    pending: VecDeque<Value>,
    /// Every text frame received, as sent (for assertions over everything a client saw).
    pub log: Vec<String>,
    /// The close frame (or end), once seen.
    closed: Option<Incoming>,
}

/// `ws://host:port/graphql` for a server's `http://host:port` base URL.
pub fn ws_url(base: &str) -> String {
    format!("{}/graphql", base.replacen("http://", "ws://", 1))
}

/// The `connection_init` payload carrying a caller's credentials.
pub fn init_payload(caller: &Caller) -> Value {
    let mut payload = json!({});
    if let Some(b) = &caller.bearer {
        payload["authorization"] = json!(format!("Bearer {b}"));
    }
    if let Some(org) = caller.org {
        payload["x-org-id"] = json!(org.to_string());
    }
    payload
}

impl WsClient {
    pub async fn connect(base: &str, protocol: Protocol) -> Self {
        Self::connect_with(base, protocol, &[], None).await
    }

    /// Connects with extra upgrade-request headers and, optionally, a small receive buffer on the
    /// client's socket (so a client that stops reading backs the server up quickly).
    pub async fn connect_with(
        base: &str,
        protocol: Protocol,
        headers: &[(&str, String)],
        recv_buffer: Option<u32>,
    ) -> Self {
        let url = ws_url(base);
        let mut request = url.as_str().into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static(protocol.name()),
        );
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let addr: std::net::SocketAddr = base
            .trim_start_matches("http://")
            .parse()
            .unwrap_or_else(|_| panic!("base {base} is not http://ip:port"));
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let tcp = tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .expect("TCP connect timed out")
            .expect("TCP connect");
        let (stream, response) =
            tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, tcp))
                .await
                .expect("websocket handshake timed out")
                .unwrap_or_else(|e| panic!("websocket upgrade on {url} failed: {e}"));
        let chosen = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(
            chosen.as_deref(),
            Some(protocol.name()),
            "the server did not select subprotocol {}",
            protocol.name()
        );
        Self {
            stream,
            protocol,
            pending: VecDeque::new(),
            log: vec![],
            closed: None,
        }
    }

    /// Connects and completes `connection_init` / `connection_ack` as `caller`.
    pub async fn connect_as(base: &str, protocol: Protocol, caller: &Caller) -> Self {
        let mut client = Self::connect(base, protocol).await;
        client.init_ok(caller).await;
        client
    }

    pub async fn send_json(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        tokio::time::timeout(WAIT, self.stream.send(Message::text(text.to_owned())))
            .await
            .expect("websocket send timed out")
            .unwrap_or_else(|e| panic!("websocket send failed: {e}"));
    }

    /// Sends `connection_init` with `payload` (no wait for the answer).
    pub async fn init(&mut self, payload: Value) {
        self.send_json(json!({"type": "connection_init", "payload": payload}))
            .await;
    }

    /// Sends `connection_init` with `caller`'s credentials and waits for `connection_ack`.
    pub async fn init_ok(&mut self, caller: &Caller) -> Value {
        self.init(init_payload(caller)).await;
        self.expect_ack().await
    }

    /// Waits for `connection_ack`; returns its payload (null when none).
    pub async fn expect_ack(&mut self) -> Value {
        match self.next_message(WAIT).await {
            Incoming::Json(m) if m["type"] == "connection_ack" => m["payload"].clone(),
            other => panic!("expected connection_ack, got {other:?}"),
        }
    }

    /// Starts an operation (`subscribe` / `start`).
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = match self.protocol {
            Protocol::TransportWs => "subscribe",
            Protocol::Legacy => "start",
        };
        self.send_json(json!({
            "type": kind,
            "id": id,
            "payload": {"query": query, "variables": variables},
        }))
        .await;
    }

    /// Stops an operation (`complete` / `stop`).
    pub async fn complete(&mut self, id: &str) {
        let kind = match self.protocol {
            Protocol::TransportWs => "complete",
            Protocol::Legacy => "stop",
        };
        self.send_json(json!({"type": kind, "id": id})).await;
    }

    /// Reads the next frame that is not a keep-alive (`ka`, server `ping` — answered — or `pong`
    /// to nothing we asked for), within `limit`. Once the socket closed, keeps returning that.
    async fn read_frame(&mut self, limit: Duration) -> Option<Incoming> {
        if let Some(closed) = &self.closed {
            return Some(closed.clone());
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let next = match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return None,
                Ok(n) => n,
            };
            let incoming = match next {
                None => Incoming::End("stream ended".into()),
                Some(Err(e)) => Incoming::End(format!("read failed: {e}")),
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str().to_owned();
                    assert_no_internals(&text);
                    self.log.push(text.clone());
                    let value: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|_| panic!("a text frame that is not JSON: {text}"));
                    match value["type"].as_str() {
                        Some("ka") => continue,
                        Some("ping") if self.protocol == Protocol::TransportWs => {
                            // The server may be gone already; a failed pong is not this test's point.
                            let _ = self
                                .stream
                                .send(Message::text(json!({"type": "pong"}).to_string()))
                                .await;
                            continue;
                        }
                        _ => Incoming::Json(value),
                    }
                }
                Some(Ok(Message::Binary(b))) => panic!("unexpected binary frame: {b:?}"),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
                        .unwrap_or((1005, String::new()));
                    assert_no_internals(&reason);
                    Incoming::Close(code, reason)
                }
            };
            if !matches!(incoming, Incoming::Json(_)) {
                self.closed = Some(incoming.clone());
            }
            return Some(incoming);
        }
    }

    /// The next message (buffered first), panicking after `limit`.
    pub async fn next_message(&mut self, limit: Duration) -> Incoming {
        if let Some(m) = self.pending.pop_front() {
            return Incoming::Json(m);
        }
        self.read_frame(limit)
            .await
            .unwrap_or_else(|| panic!("no message within {limit:?}"))
    }

    /// The next message (buffered first), or `None` when nothing arrives within `limit`.
    pub async fn try_next_message(&mut self, limit: Duration) -> Option<Incoming> {
        if let Some(m) = self.pending.pop_front() {
            return Some(Incoming::Json(m));
        }
        self.read_frame(limit).await
    }

    /// Waits for the next message about operation `id`, keeping other operations' messages for
    /// later. Panics on a close, or after `limit`.
    pub async fn next_for(&mut self, id: &str, limit: Duration) -> Value {
        if let Some(i) = self.pending.iter().position(|m| m["id"] == id) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_frame(left).await {
                None => panic!(
                    "no message for operation {id} within {limit:?}; pending: {:?}",
                    self.pending
                ),
                Some(Incoming::Json(m)) if m["id"] == id => return m,
                Some(Incoming::Json(m)) => self.pending.push_back(m),
                Some(other) => panic!("socket closed while waiting for operation {id}: {other:?}"),
            }
        }
    }

    /// The payload of the next `next` / `data` message for `id` (panics on `error` / `complete`).
    pub async fn next_payload(&mut self, id: &str) -> Value {
        self.next_payload_within(id, WAIT).await
    }

    pub async fn next_payload_within(&mut self, id: &str, limit: Duration) -> Value {
        let m = self.next_for(id, limit).await;
        match m["type"].as_str() {
            Some("next" | "data") => m["payload"].clone(),
            _ => panic!("expected a result for operation {id}, got {m}"),
        }
    }

    /// The next `ticketEvents` event of subscription `id` (its payload must carry no errors).
    pub async fn next_event(&mut self, id: &str) -> Value {
        let payload = self.next_payload(id).await;
        assert!(
            payload.get("errors").is_none_or(Value::is_null),
            "event with errors on {id}: {payload}"
        );
        let event = payload["data"]["ticketEvents"].clone();
        assert!(event.is_object(), "not a ticketEvents payload: {payload}");
        event
    }

    /// Reads events of `id` until one satisfies `pred` (within [`WAIT`] in all); returns it and the
    /// events read before it.
    pub async fn wait_event(
        &mut self,
        id: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> (Value, Vec<Value>) {
        self.wait_event_within(id, what, WAIT, pred).await
    }

    pub async fn wait_event_within(
        &mut self,
        id: &str,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> (Value, Vec<Value>) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut before = vec![];
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                panic!("{what}: not seen on {id} within {limit:?}; saw {before:#?}");
            }
            let m = self.next_for_or_none(id, left).await;
            let Some(m) = m else {
                panic!("{what}: not seen on {id} within {limit:?}; saw {before:#?}");
            };
            assert!(
                matches!(m["type"].as_str(), Some("next" | "data")),
                "{what}: expected events on {id}, got {m}; saw {before:#?}"
            );
            let payload = &m["payload"];
            assert!(
                payload.get("errors").is_none_or(Value::is_null),
                "{what}: event with errors on {id}: {payload}"
            );
            let event = payload["data"]["ticketEvents"].clone();
            if pred(&event) {
                return (event, before);
            }
            before.push(event);
        }
    }

    /// Like [`WsClient::next_for`], but `None` after `limit` instead of a panic.
    async fn next_for_or_none(&mut self, id: &str, limit: Duration) -> Option<Value> {
        if let Some(i) = self.pending.iter().position(|m| m["id"] == id) {
            return self.pending.remove(i);
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_frame(left).await {
                None => return None,
                Some(Incoming::Json(m)) if m["id"] == id => return Some(m),
                Some(Incoming::Json(m)) => self.pending.push_back(m),
                Some(other) => panic!("socket closed while waiting for operation {id}: {other:?}"),
            }
        }
    }

    /// Waits for an `error` message for `id`; returns its errors as a list (the legacy protocol
    /// may send one error object instead of a list).
    pub async fn expect_error(&mut self, id: &str) -> Vec<Value> {
        let m = self.next_for(id, WAIT).await;
        assert_eq!(m["type"], "error", "expected an error for {id}, got {m}");
        match &m["payload"] {
            Value::Array(errors) => errors.clone(),
            Value::Object(_) => {
                if let Some(Value::Array(errors)) = m["payload"].get("errors") {
                    errors.clone()
                } else {
                    vec![m["payload"].clone()]
                }
            }
            other => panic!("error without errors for {id}: {other}"),
        }
    }

    /// Waits for `complete` for `id`.
    pub async fn expect_complete(&mut self, id: &str) {
        let m = self.next_for(id, WAIT).await;
        assert_eq!(m["type"], "complete", "expected complete for {id}, got {m}");
    }

    /// Runs a query or mutation over the socket: its one result, then `complete`.
    pub async fn run(&mut self, id: &str, query: &str, variables: Value) -> Value {
        self.subscribe(id, query, variables).await;
        let payload = self.next_payload(id).await;
        self.expect_complete(id).await;
        payload
    }

    /// Waits for the server to close the socket (within [`WAIT`]); any operation message meanwhile
    /// fails the test (a legacy `connection_error` is allowed). Returns the close code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        self.expect_close_within(WAIT).await
    }

    pub async fn expect_close_within(&mut self, limit: Duration) -> (u16, String) {
        if let Some(m) = self.pending.pop_front() {
            panic!("expected the socket to close, but it had sent {m}");
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_frame(left).await {
                None => panic!("the socket did not close within {limit:?}"),
                Some(Incoming::Close(code, reason)) => return (code, reason),
                Some(Incoming::End(why)) => {
                    panic!("the socket ended without a close frame ({why})")
                }
                Some(Incoming::Json(m)) if m["type"] == "connection_error" => continue,
                Some(Incoming::Json(m)) => {
                    panic!("expected the socket to close, but it sent {m}")
                }
            }
        }
    }

    /// Reads (and drops) whatever arrives until the socket closes, within `limit`: the close code,
    /// or `None` when the stream ended without a close frame.
    pub async fn drain_until_closed(&mut self, limit: Duration) -> Option<(u16, String)> {
        self.pending.clear();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_frame(left).await {
                None => panic!("the socket did not close within {limit:?}"),
                Some(Incoming::Close(code, reason)) => return Some((code, reason)),
                Some(Incoming::End(why)) => {
                    eprintln!("stream ended without a close frame: {why}");
                    return None;
                }
                Some(Incoming::Json(_)) => {}
            }
        }
    }

    /// Asserts that for `duration` nothing but keep-alives arrives (and the socket stays open).
    pub async fn expect_silence(&mut self, duration: Duration) {
        if let Some(m) = self.pending.pop_front() {
            panic!("expected silence, but had received {m}");
        }
        if let Some(m) = self.read_frame(duration).await {
            panic!("expected silence for {duration:?}, got {m:?}");
        }
    }

    /// Messages read and kept while waiting for others.
    pub fn take_pending(&mut self) -> Vec<Value> {
        self.pending.drain(..).collect()
    }

    /// graphql-transport-ws `ping`, answered by `pong`.
    pub async fn ping_pong(&mut self) {
        assert_eq!(self.protocol, Protocol::TransportWs);
        self.send_json(json!({"type": "ping"})).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read_frame(left).await {
                None => panic!("no pong within {WAIT:?}"),
                Some(Incoming::Json(m)) if m["type"] == "pong" => return,
                Some(Incoming::Json(m)) => self.pending.push_back(m),
                Some(other) => panic!("socket closed while waiting for pong: {other:?}"),
            }
        }
    }

    /// Starts a close handshake from the client and waits for it to finish.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await;
    }
}

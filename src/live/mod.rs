//! The live desk: GraphQL subscriptions fed by PostgreSQL notifications.
//!
//! - One `LISTEN deskgraph_live` connection per instance ([`listener`]), over `DATABASE_LISTEN_URL`
//!   (a direct session connection), reconnecting with backoff; every instance hears every commit,
//!   so any instance serves any subscriber.
//! - Notifications (ids and a kind only) fan out by organization to subscriber *groups*: the
//!   subscriptions of one identity (a user, or an API key) in one organization ([`group`]). A group
//!   gathers a burst for a short window, merges it, and re-reads it in **one** read-only tenant
//!   transaction opened with the identity's credentials — which resolves its role afresh, so a
//!   member removed a moment ago hears nothing more. Each distinct subscription document of the
//!   group runs once on that transaction and its result goes to every socket that asked for it.
//! - Sockets ([`conn`]) have bounded queues; a client that does not keep up is disconnected.
//! - A notification that may have been missed (the LISTEN connection dropped, a group fell behind,
//!   a re-read failed) becomes a `RESYNC` event: clients refetch; nothing is lost silently.

pub mod conn;
mod group;
mod listener;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_graphql::{Request, Response, Variables};
use futures_util::StreamExt as _;
use tokio::sync::{Notify, broadcast, watch};
use uuid::Uuid;

use crate::config::LiveConfig;
use crate::db::{Access, Credentials};
use crate::error::AppError;
use crate::graphql::Session;
use crate::metrics::LiveMetrics;
use crate::schema::executor::{Admission, Engine, Outcome, finalize_errors, selected_operation};
use crate::support::events::{Interest, InterestSlot, LiveBatch, LiveEvent};

pub use conn::{Close, Conn, ConnEnds, Outgoing};

/// Events one organization's groups may fall behind by before they get `RESYNC` instead.
const ORG_BACKLOG: usize = 1024;

/// The live desk of one instance.
pub struct Hub {
    engine: Arc<Engine>,
    cfg: LiveConfig,
    metrics: LiveMetrics,
    state: Mutex<State>,
    stopping: watch::Sender<bool>,
    /// Whether the LISTEN connection is up.
    listening: watch::Sender<bool>,
    next_key: AtomicU64,
    sockets: AtomicUsize,
    sockets_gone: Notify,
    /// Re-reads and access checks in flight: at most half the runtime pool, so a burst of live
    /// deliveries never takes every connection from requests.
    rereads: tokio::sync::Semaphore,
}

#[derive(Default)]
struct State {
    /// Where each organization's events go; only organizations with subscribers here.
    orgs: HashMap<Uuid, broadcast::Sender<Arc<LiveEvent>>>,
    groups: HashMap<GroupKey, Arc<Group>>,
    /// Open sockets per organization.
    connections: HashMap<Uuid, usize>,
}

/// Who subscribes: an organization and one identity in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    org: Uuid,
    who: String,
}

/// The subscriptions of one identity in one organization, served by one task.
struct Group {
    key: GroupKey,
    credentials: Credentials,
    subs: Mutex<HashMap<u64, Arc<Sub>>>,
    left: Notify,
}

/// One subscription: the socket, the client's id for it, its document and what it listens for.
struct Sub {
    conn: Arc<Conn>,
    id: Arc<str>,
    doc: Doc,
    interest: Interest,
}

/// A subscription document with its variables; `key` tells equal ones apart from the rest.
#[derive(Clone)]
struct Doc {
    query: String,
    variables: Variables,
    operation_name: Option<String>,
    key: String,
}

impl Doc {
    fn of(request: &Request) -> Self {
        let variables = request.variables.clone();
        let key = format!(
            "{}\u{0}{}\u{0}{}",
            request.operation_name.as_deref().unwrap_or_default(),
            serde_json::to_string(&variables).unwrap_or_default(),
            request.query
        );
        Self {
            query: request.query.clone(),
            variables,
            operation_name: request.operation_name.clone(),
            key,
        }
    }

    fn request(&self) -> Request {
        let mut request = Request::new(self.query.clone()).variables(self.variables.clone());
        if let Some(name) = &self.operation_name {
            request = request.operation_name(name.clone());
        }
        request
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The identity part of a group key: never the token itself (a renewed token is the same person).
fn identity(credentials: &Credentials) -> String {
    match credentials {
        Credentials::User { subject, .. } => format!("user:{subject}"),
        Credentials::ApiKey { secret_hash, .. } => format!("key:{}", hex::encode(secret_hash)),
        Credentials::Trusted(ctx) => format!("trusted:{:?}:{:?}", ctx.user_id, ctx.role),
    }
}

/// The credentials a group re-reads with: who, without the e-mail and name of the token the first
/// subscriber happened to hold (resolving a user with a profile updates it; a group living for hours
/// must not write an old one back over a newer one).
fn without_profile(credentials: &Credentials) -> Credentials {
    match credentials {
        Credentials::User {
            subject,
            email_verified,
            org_id,
            ..
        } => Credentials::User {
            subject: subject.clone(),
            email: None,
            email_verified: *email_verified,
            name: None,
            org_id: *org_id,
        },
        other => other.clone(),
    }
}

/// Whether a subscription document's operation has exactly one root field, as GraphQL requires
/// (async-graphql does not check it; two fields would share one interest).
fn single_root_field(request: &Request) -> bool {
    use async_graphql::parser::types::Selection;
    let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    selected_operation(&doc, request.operation_name.as_deref()).is_some_and(|op| {
        let items = &op.node.selection_set.node.items;
        items.len() == 1 && matches!(items[0].node, Selection::Field(_))
    })
}

/// A refusal of the caller (as opposed to a failure of the server).
fn is_refusal(err: &AppError) -> bool {
    matches!(err, AppError::Unauthenticated(_) | AppError::Forbidden(_))
}

/// The response refusing an operation (internal causes logged), as the executor answers one.
fn failed(err: &AppError) -> Response {
    Outcome::failed(err).response
}

/// A socket's admission: counted against its organization's limit until dropped.
pub struct ConnSlot {
    hub: Arc<Hub>,
    org: Option<Uuid>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Some(org) = self.org {
            let mut state = lock(&self.hub.state);
            if let Some(n) = state.connections.get_mut(&org) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    state.connections.remove(&org);
                }
            }
        }
    }
}

/// An active subscription; dropping it ends it.
pub struct SubGuard {
    hub: Arc<Hub>,
    group: Arc<Group>,
    key: u64,
}

impl Drop for SubGuard {
    fn drop(&mut self) {
        let mut subs = lock(&self.group.subs);
        if subs.remove(&self.key).is_some() {
            self.hub.metrics.subscriptions.dec();
        }
        if subs.is_empty() {
            self.group.left.notify_one();
        }
    }
}

/// An open socket, for the shutdown count; dropping it says the socket is gone.
pub struct SocketGuard(Arc<Hub>);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.0.metrics.connections.dec();
        if self.0.sockets.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.sockets_gone.notify_waiters();
        }
    }
}

impl Hub {
    pub fn new(engine: Arc<Engine>, cfg: LiveConfig, metrics: LiveMetrics) -> Arc<Self> {
        let engine_pool_size = engine.pool.status().max_size;
        Arc::new(Self {
            engine,
            cfg,
            metrics,
            state: Mutex::default(),
            stopping: watch::channel(false).0,
            listening: watch::channel(false).0,
            next_key: AtomicU64::new(1),
            sockets: AtomicUsize::new(0),
            sockets_gone: Notify::new(),
            rereads: tokio::sync::Semaphore::new((engine_pool_size / 2).max(1)),
        })
    }

    pub fn config(&self) -> &LiveConfig {
        &self.cfg
    }

    pub fn metrics(&self) -> &LiveMetrics {
        &self.metrics
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Starts listening on `listen` (a direct session connection); the task ends at [`Hub::stop`].
    pub fn start(self: &Arc<Self>, listen: crate::db::tls::Target) -> tokio::task::JoinHandle<()> {
        tokio::spawn(listener::run(self.clone(), listen))
    }

    /// Waits (at most `limit`) until the LISTEN connection is up; false if it is not.
    pub async fn wait_listening(&self, limit: Duration) -> bool {
        let mut listening = self.listening.subscribe();
        tokio::time::timeout(limit, listening.wait_for(|up| *up))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Resolves once the instance is stopping (at once if it already is); sockets then close with
    /// 1001.
    pub async fn stopped(&self) {
        let mut stopping = self.stopping.subscribe();
        let _ = stopping.wait_for(|stopping| *stopping).await;
    }

    /// Tells every socket to close with 1001 and waits (at most `grace`) until they have.
    pub async fn stop(&self, grace: Duration) {
        self.stopping.send_replace(true);
        let gone = async {
            loop {
                let notified = self.sockets_gone.notified();
                if self.sockets.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(grace, gone).await.is_err() {
            tracing::warn!("websockets still open after the grace period");
        }
    }

    /// Counts an upgraded socket until the guard is dropped.
    pub fn socket_opened(self: &Arc<Self>) -> SocketGuard {
        self.sockets.fetch_add(1, Ordering::AcqRel);
        self.metrics.connections.inc();
        SocketGuard(self.clone())
    }

    /// Admits a socket at `connection_init`: the credentials must resolve (a member of the
    /// organization named, a live API key), and the organization must have room for one more socket.
    pub async fn connect(self: &Arc<Self>, credentials: &Credentials) -> Result<ConnSlot, Close> {
        let admission = Admission {
            access: Access::ReadOnly,
            // Checked per operation; here only who the caller is.
            persisted: true,
            metered: false,
            request_id: None,
            client_request_id: None,
        };
        let tx = match self.engine.admit(credentials, admission).await {
            Ok(tx) => tx,
            Err(err) if is_refusal(&err) => return Err(Close::Forbidden),
            Err(err) => {
                failed(&err);
                return Err(Close::Unavailable);
            }
        };
        let org = tx.context().org_id;
        let _ = tx.commit().await;
        if let Some(org) = org {
            let mut state = lock(&self.state);
            let n = state.connections.entry(org).or_default();
            if *n >= self.cfg.ws_max_connections_per_org {
                return Err(Close::TooMany);
            }
            *n += 1;
        }
        Ok(ConnSlot {
            hub: self.clone(),
            org,
        })
    }

    /// Starts subscription `id` of `conn`: admits it like any operation (rate limit included), runs
    /// it once on an empty batch to validate the document and read its filter, then joins (or
    /// creates) the caller's group. Errors come back as a response to send.
    pub async fn subscribe(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        credentials: &Credentials,
        id: Arc<str>,
        mut request: Request,
    ) -> Result<SubGuard, Response> {
        let engine = &self.engine;
        let persisted = engine
            .persisted
            .resolve(&mut request)
            .map_err(|e| failed(&e))?
            .is_some();
        let admission = Admission {
            access: Access::ReadOnly,
            persisted,
            metered: true,
            request_id: None,
            client_request_id: None,
        };
        let tx = engine
            .admit(credentials, admission)
            .await
            .map_err(|e| failed(&e))?;
        let org = tx.context().org_id;
        if !single_root_field(&request) {
            let _ = tx.rollback().await;
            return Err(failed(&AppError::bad_input(
                "a subscription selects exactly one field (ticketEvents); send one per subscription",
            )));
        }
        let doc = Doc::of(&request);
        let slot = InterestSlot::default();
        let probe = engine
            .with_operation_data(
                doc.request(),
                Session::new(tx.clone(), engine.authz.clone()),
                credentials,
            )
            .data(LiveBatch::default())
            .data(slot.clone());
        let responses: Vec<Response> = engine.schema.execute_stream(probe).collect().await;
        let _ = tx.commit().await;
        if let Some(mut response) = responses.into_iter().find(Response::is_err) {
            finalize_errors(&mut response.errors);
            return Err(response);
        }
        let (Some(org), Some(interest)) = (org, slot.take()) else {
            return Err(failed(&AppError::bad_input(
                "only subscriptions (ticketEvents) run this way; send queries and mutations as they are",
            )));
        };
        let key = GroupKey {
            org,
            who: identity(credentials),
        };
        let sub = Arc::new(Sub {
            conn: conn.clone(),
            id,
            doc,
            interest,
        });
        let sub_key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let group = {
            let mut state = lock(&self.state);
            let group = match state.groups.get(&key) {
                Some(group) => group.clone(),
                None => {
                    let group = Arc::new(Group {
                        key: key.clone(),
                        credentials: without_profile(credentials),
                        subs: Mutex::default(),
                        left: Notify::new(),
                    });
                    let events = state
                        .orgs
                        .entry(org)
                        .or_insert_with(|| broadcast::channel(ORG_BACKLOG).0)
                        .subscribe();
                    state.groups.insert(key, group.clone());
                    tokio::spawn(group::run(self.clone(), group.clone(), events));
                    group
                }
            };
            lock(&group.subs).insert(sub_key, sub);
            group
        };
        self.metrics.subscriptions.inc();
        tracing::info!(org_id = %org, "subscription started");
        Ok(SubGuard {
            hub: self.clone(),
            group,
            key: sub_key,
        })
    }

    /// Hands a notification to the organization's groups (dropped when it has none here).
    fn dispatch(&self, org: Uuid, event: LiveEvent) {
        self.metrics.events_received.inc();
        if let Some(events) = lock(&self.state).orgs.get(&org) {
            let _ = events.send(Arc::new(event));
        }
    }

    /// After a gap in listening: every group here gets `RESYNC`.
    fn resync_all(&self) {
        let event = Arc::new(LiveEvent::resync());
        for events in lock(&self.state).orgs.values() {
            let _ = events.send(event.clone());
        }
    }

    /// Removes `group` if it has no subscribers (under the lock new subscribers join through).
    fn retire(&self, group: &Arc<Group>) -> bool {
        let mut state = lock(&self.state);
        if !lock(&group.subs).is_empty() {
            return false;
        }
        state.groups.remove(&group.key);
        true
    }

    /// Forgets an organization's channel once no group listens to it.
    fn prune_org(&self, org: Uuid) {
        let mut state = lock(&self.state);
        if state
            .orgs
            .get(&org)
            .is_some_and(|events| events.receiver_count() == 0)
        {
            state.orgs.remove(&org);
        }
    }
}

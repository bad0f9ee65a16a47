//! A group's task: gathers the organization's events, merges bursts, re-reads each batch once for
//! the group's identity and runs each distinct subscription document of the group on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::Response;
use futures_util::StreamExt as _;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{Close, Group, Hub, Outgoing, Sub, failed, is_refusal, lock};
use crate::db::Access;
use crate::graphql::Session;
use crate::schema::executor::{Admission, finalize_errors};
use crate::support::events::{LiveBatch, LiveEvent, coalesce};

/// How soon a RESYNC owed after a failed re-read is tried again when no event comes.
const RESYNC_RETRY: Duration = Duration::from_secs(1);

pub(super) async fn run(
    hub: Arc<Hub>,
    group: Arc<Group>,
    mut events: broadcast::Receiver<Arc<LiveEvent>>,
) {
    let window = Duration::from_millis(hub.cfg.live_coalesce_ms);
    let period = Duration::from_secs(hub.cfg.live_access_check_secs.max(1));
    let mut check = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Set when events were lost here: RESYNC goes with the next delivery, or on its own within a
    // second when nothing else comes.
    let mut owed_resync = false;
    loop {
        let first = tokio::select! {
            received = events.recv() => received,
            _ = check.tick() => {
                check_access(&hub, &group).await;
                continue;
            }
            () = group.left.notified() => {
                if hub.retire(&group) {
                    break;
                }
                continue;
            }
            () = tokio::time::sleep(RESYNC_RETRY), if owed_resync => {
                owed_resync = !deliver(&hub, &group, vec![LiveEvent::resync()]).await;
                continue;
            }
            () = hub.stopped() => break,
        };
        let mut pending = Vec::new();
        let mut closed = take(&hub, first, &mut pending);
        let deadline = tokio::time::sleep(window);
        tokio::pin!(deadline);
        while !closed {
            tokio::select! {
                received = events.recv() => closed = take(&hub, received, &mut pending),
                () = &mut deadline => break,
            }
        }
        if owed_resync {
            pending.push(LiveEvent::resync());
        }
        owed_resync = !deliver(&hub, &group, coalesce(pending)).await;
        if closed {
            break;
        }
    }
    drop(events);
    hub.prune_org(group.key.org);
}

/// Adds what the channel gave to `pending`; true when the channel is gone.
fn take(
    hub: &Hub,
    received: Result<Arc<LiveEvent>, RecvError>,
    pending: &mut Vec<LiveEvent>,
) -> bool {
    match received {
        Ok(event) => pending.push((*event).clone()),
        Err(RecvError::Lagged(missed)) => {
            tracing::warn!(missed, "live events fell behind; sending RESYNC");
            hub.metrics.events_dropped.inc_by(missed);
            pending.push(LiveEvent::resync());
        }
        Err(RecvError::Closed) => return true,
    }
    false
}

/// Closes every socket of the group with 4403 when its identity lost access.
async fn check_access(hub: &Hub, group: &Group) {
    let Ok(_slot) = hub.rereads.acquire().await else {
        return;
    };
    match hub.engine.admit(&group.credentials, reread()).await {
        Ok(tx) => {
            let _ = tx.commit().await;
        }
        Err(err) if is_refusal(&err) => lost_access(group),
        Err(err) => {
            tracing::warn!(error = %err, "live access check failed; trying again later");
        }
    }
}

fn lost_access(group: &Group) {
    tracing::info!(org_id = %group.key.org, "subscriber lost access; closing its sockets");
    for sub in lock(&group.subs).values() {
        sub.conn.close(Close::Forbidden);
    }
}

/// How re-reads open their transaction: read-only, not metered (the subscription was when it
/// started), for an operation that was admitted (persisted where the role requires it).
fn reread() -> Admission<'static> {
    Admission {
        access: Access::ReadOnly,
        persisted: true,
        metered: false,
        request_id: None,
        client_request_id: None,
    }
}

/// Re-reads `events` for the group and queues the results; false when they could not be re-read
/// (the subscribers are owed a RESYNC).
async fn deliver(hub: &Hub, group: &Group, events: Vec<LiveEvent>) -> bool {
    // One execution per distinct document, with the events its filter may want.
    let subs: Vec<Arc<Sub>> = lock(&group.subs).values().cloned().collect();
    let mut runs: HashMap<&str, (Vec<LiveEvent>, Vec<&Arc<Sub>>)> = HashMap::new();
    for sub in &subs {
        if let Some((_, listeners)) = runs.get_mut(sub.doc.key.as_str()) {
            listeners.push(sub);
            continue;
        }
        let wanted: Vec<LiveEvent> = events
            .iter()
            .filter(|e| sub.interest.matches(e))
            .cloned()
            .collect();
        if !wanted.is_empty() {
            runs.insert(sub.doc.key.as_str(), (wanted, vec![sub]));
        }
    }
    if runs.is_empty() {
        return true;
    }
    let Ok(_slot) = hub.rereads.acquire().await else {
        return false;
    };
    let started = Instant::now();
    let engine = &hub.engine;
    let tx = match engine.admit(&group.credentials, reread()).await {
        Ok(tx) => tx,
        Err(err) if is_refusal(&err) => {
            // From the moment access is gone, nothing more is delivered.
            lost_access(group);
            return true;
        }
        Err(err) => {
            failed(&err);
            tracing::warn!(org_id = %group.key.org, "live re-read failed; subscribers get RESYNC");
            let lost: usize = runs.values().map(|(e, s)| e.len() * s.len()).sum();
            hub.metrics.events_dropped.inc_by(lost as u64);
            return false;
        }
    };
    let session = Session::new(tx.clone(), engine.authz.clone());
    let executions = runs.into_values().map(|(wanted, listeners)| {
        let request = engine
            .with_operation_data(
                listeners[0].doc.request(),
                session.clone(),
                &group.credentials,
            )
            .data(LiveBatch(wanted.into()));
        async move {
            let mut responses: Vec<Response> =
                engine.schema.execute_stream(request).collect().await;
            // A re-read that failed (a timeout, a lost connection) is not news: the subscribers get
            // RESYNC instead of an error, and the failure goes to the log.
            if let Some(failure) = responses.iter_mut().find(|r| r.is_err()) {
                // Logs internal causes; the errors themselves go to nobody.
                finalize_errors(&mut failure.errors);
                tracing::warn!(
                    errors = failure.errors.len(),
                    "live re-read failed; subscribers get RESYNC"
                );
                return false;
            }
            for response in responses {
                let payload: Arc<str> = match serde_json::to_string(&response) {
                    Ok(json) => json.into(),
                    Err(err) => {
                        tracing::error!(error = %err, "cannot serialise a live event");
                        continue;
                    }
                };
                for sub in &listeners {
                    sub.conn.deliver(Outgoing::Next {
                        id: sub.id.clone(),
                        payload: payload.clone(),
                    });
                }
            }
            true
        }
    });
    let delivered = futures_util::future::join_all(executions).await;
    let committed = tx.commit().await.is_ok();
    let statements = tx.statement_count();
    hub.metrics
        .reread
        .seconds
        .observe(started.elapsed().as_secs_f64());
    hub.metrics.reread.statements.observe(statements as f64);
    tracing::debug!(
        org_id = %group.key.org,
        events = events.len(),
        subscribers = subs.len(),
        sql_statements = statements,
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "live batch delivered"
    );
    committed && delivered.into_iter().all(|ok| ok)
}

//! The instance's one `LISTEN deskgraph_live` connection: reconnects with backoff, and after any gap
//! sends `RESYNC` to every group (notifications during the gap are gone).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio_postgres::{AsyncMessage, NoTls};

use super::Hub;
use crate::support::events::{CHANNEL, parse_notification};

/// The connection's `application_name` (to find it in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "deskgraph-live";

const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(10);

/// Marks the hub as not listening when a connection's life ends, however it ends.
struct NotListening<'a>(&'a Hub);

impl Drop for NotListening<'_> {
    fn drop(&mut self) {
        self.0.listening.send_replace(false);
    }
}

/// How often the connection is asked whether it is still there, and how long it may take to answer:
/// a connection silently cut (a NAT or load balancer forgetting it, a failover) otherwise looks
/// idle until TCP gives up, hours later, while its notifications are lost.
const PING_EVERY: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn run(hub: Arc<Hub>, mut config: tokio_postgres::Config) {
    config
        .application_name(APPLICATION_NAME)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3);
    let mut retry = FIRST_RETRY;
    let mut heard_before = false;
    loop {
        let session = listen(&hub, &config, &mut heard_before, &mut retry);
        tokio::select! {
            () = hub.stopped() => return,
            result = session => match result {
                Ok(()) => tracing::warn!("live notification connection closed; reconnecting"),
                Err(err) => tracing::warn!(error = %err, retry_ms = retry.as_millis() as u64, "live notification connection failed; reconnecting"),
            },
        }
        tokio::select! {
            () = hub.stopped() => return,
            () = tokio::time::sleep(retry) => {},
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// One connection's life: LISTEN, then dispatch until it drops.
async fn listen(
    hub: &Hub,
    config: &tokio_postgres::Config,
    heard_before: &mut bool,
    retry: &mut Duration,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    {
        let statement = format!("listen {CHANNEL}");
        let listen = client.batch_execute(&statement);
        tokio::pin!(listen);
        // The connection must be polled for LISTEN to complete.
        loop {
            tokio::select! {
                done = &mut listen => { done?; break; }
                message = messages.next() => match message {
                    Some(Ok(_)) => {},
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                },
            }
        }
    }
    *retry = FIRST_RETRY;
    if *heard_before {
        tracing::info!("live notifications are back; subscribers get RESYNC");
    } else {
        tracing::info!("listening for live events");
    }
    // Whoever subscribed while nobody listened may have missed something (none do at a normal start).
    hub.resync_all();
    *heard_before = true;
    hub.listening.send_replace(true);
    let _not_listening = NotListening(hub);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            _ = ping.tick() => {
                // The answer comes through the connection this loop polls: poll it meanwhile.
                let alive = client.simple_query("select 1");
                tokio::pin!(alive);
                let deadline = tokio::time::sleep(PING_TIMEOUT);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        answered = &mut alive => { answered?; break; }
                        () = &mut deadline => {
                            tracing::warn!("live notification connection does not answer; reconnecting");
                            return Ok(());
                        }
                        message = messages.next() => match message {
                            Some(message) => handle(hub, message?),
                            None => return Ok(()),
                        },
                    }
                }
                continue;
            }
        };
        match message {
            Some(message) => handle(hub, message?),
            None => return Ok(()),
        }
    }
}

fn handle(hub: &Hub, message: AsyncMessage) {
    if let AsyncMessage::Notification(n) = message {
        match parse_notification(n.payload()) {
            Some((org, event)) => hub.dispatch(org, event),
            None => tracing::warn!(channel = n.channel(), "unreadable live notification"),
        }
    }
}

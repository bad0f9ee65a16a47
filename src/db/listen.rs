//! A `LISTEN` connection kept alive for as long as its owner runs: the job queue's wake-ups and the
//! live desk's change notifications both use it.
//!
//! LISTEN needs one server session for its whole life, so it has a connection of its own (over
//! `DATABASE_LISTEN_URL`, never a transaction-mode pooler). The connection reconnects with backoff,
//! has TCP keepalives, and is asked `select 1` every [`PING_EVERY`]: a connection silently cut (a
//! NAT or load balancer forgetting it, a failover) otherwise looks idle until TCP gives up, hours
//! later, while its notifications are lost. After every (re)connect the owner hears
//! [`Heard::Listening`], so it can make up for what it may have missed.

use std::future::Future;
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use tokio_postgres::AsyncMessage;

use super::tls::{Target, error_chain};

/// How often the connection is asked whether it is still there, and how long it may take to answer.
pub const PING_EVERY: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// What to listen to.
#[derive(Debug, Clone, Copy)]
pub struct Channel {
    /// The channel (a plain identifier).
    pub name: &'static str,
    /// What its notifications are about, for log lines (`job`, `live`).
    pub about: &'static str,
    /// The wait before the first reconnection, doubling up to `last_retry`.
    pub first_retry: Duration,
    pub last_retry: Duration,
}

/// What the connection tells its owner.
#[derive(Debug)]
pub enum Heard<'a> {
    /// LISTEN is in place; `again` after a reconnection (notifications of the gap are gone).
    Listening { again: bool },
    /// A notification's payload.
    Notification(&'a str),
    /// The connection that was listening has ended (a reconnection follows).
    Lost,
}

/// Listens on `channel` at `target` until `stopped` resolves, telling `on` what it hears.
pub async fn run(
    mut target: Target,
    channel: Channel,
    stopped: impl Future<Output = ()>,
    mut on: impl FnMut(Heard<'_>),
) {
    target
        .config_mut()
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3);
    tokio::pin!(stopped);
    let mut retry = channel.first_retry;
    let mut listened = false;
    loop {
        let mut listening = false;
        let session = session(&target, channel, listened, &mut listening, &mut on);
        let result = tokio::select! {
            () = &mut stopped => return,
            result = session => result,
        };
        if listening {
            on(Heard::Lost);
            listened = true;
            retry = channel.first_retry;
        }
        let about = channel.about;
        match result {
            Ok(()) => tracing::warn!("{about} notification connection closed; reconnecting"),
            Err(err) => {
                tracing::warn!(
                    error = error_chain(&err),
                    server = target.describe(),
                    retry_ms = retry.as_millis() as u64,
                    "{about} notification connection failed; reconnecting"
                )
            }
        }
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(retry) => {},
        }
        retry = (retry * 2).min(channel.last_retry);
    }
}

/// One connection's life: LISTEN, then hand on notifications until it drops or stops answering.
async fn session(
    target: &Target,
    channel: Channel,
    again: bool,
    listening: &mut bool,
    on: &mut impl FnMut(Heard<'_>),
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = target.connect().await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("listen {}", channel.name);
    if answered(client.batch_execute(&statement), &mut messages, on)
        .await?
        .is_none()
    {
        return Ok(());
    }
    *listening = true;
    on(Heard::Listening { again });
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => hand_on(message?, on),
                None => return Ok(()),
            },
            _ = ping.tick() => {
                if answered(client.simple_query("select 1"), &mut messages, on).await?.is_none() {
                    tracing::warn!(about = channel.about, "notification connection does not answer");
                    return Ok(());
                }
            }
        }
    }
}

/// Awaits `request` for at most [`PING_TIMEOUT`]. Its answer comes through the connection, so the
/// connection is polled meanwhile and what it yields is handed on. `None`: no answer in time, or the
/// connection ended first.
async fn answered<T>(
    request: impl Future<Output = Result<T, tokio_postgres::Error>>,
    messages: &mut (impl Stream<Item = Result<AsyncMessage, tokio_postgres::Error>> + Unpin),
    on: &mut impl FnMut(Heard<'_>),
) -> Result<Option<T>, tokio_postgres::Error> {
    tokio::pin!(request);
    let deadline = tokio::time::sleep(PING_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            answer = &mut request => return answer.map(Some),
            () = &mut deadline => return Ok(None),
            message = messages.next() => match message {
                Some(message) => hand_on(message?, on),
                None => return Ok(None),
            },
        }
    }
}

fn hand_on(message: AsyncMessage, on: &mut impl FnMut(Heard<'_>)) {
    if let AsyncMessage::Notification(n) = message {
        on(Heard::Notification(n.payload()));
    }
}

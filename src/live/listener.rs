//! The instance's one `LISTEN deskgraph_live` connection (`db::listen`): after any gap it sends
//! `RESYNC` to every group (notifications during the gap are gone).

use std::sync::Arc;
use std::time::Duration;

use super::Hub;
use crate::db::listen::{self, Channel, Heard};
use crate::db::tls::Target;
use crate::support::events::{CHANNEL, parse_notification};

/// The connection's `application_name` (to find it in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "deskgraph-live";

pub(super) async fn run(hub: Arc<Hub>, mut target: Target) {
    target.config_mut().application_name(APPLICATION_NAME);
    let channel = Channel {
        name: CHANNEL,
        about: "live",
        first_retry: Duration::from_millis(250),
        last_retry: Duration::from_secs(10),
    };
    listen::run(target, channel, hub.stopped(), |heard| match heard {
        Heard::Listening { again } => {
            if again {
                tracing::info!("live notifications are back; subscribers get RESYNC");
            } else {
                tracing::info!("listening for live events");
            }
            // Whoever subscribed while nobody listened may have missed something (none do at a
            // normal start).
            hub.resync_all();
            hub.listening.send_replace(true);
        }
        Heard::Notification(payload) => match parse_notification(payload) {
            Some((org, event)) => hub.dispatch(org, event),
            None => tracing::warn!("unreadable live notification"),
        },
        Heard::Lost => {
            hub.listening.send_replace(false);
        }
    })
    .await;
}

//! Prometheus metrics at `/metrics` (OpenMetrics text). Labels never carry tenant data (no
//! organization or user ids), so the endpoint can be scraped without exposing one tenant to another;
//! still, serve it to your scraper only (e.g. block `/metrics` at the load balancer).

use std::time::Duration;

use crate::db::Pool;

use crate::ratelimit::OrgRateLimiter;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    /// `ok`, `error` (the operation ran and returned errors), or why it was refused as a whole
    /// (`unauthenticated`, `forbidden`, `rate_limited`, `bad_request`, `internal`).
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabels {
    /// Why the server closed a websocket: `expired`, `forbidden`, `slow_consumer`, `shutdown`,
    /// `too_many`, `init_timeout`, `protocol`.
    reason: String,
}

/// The live desk's metrics (websockets and subscription events); cheap to clone, shared by the
/// connection tasks and the event hub.
#[derive(Clone, Default)]
pub struct LiveMetrics {
    pub connections: Gauge,
    pub subscriptions: Gauge,
    /// Notifications heard from the database.
    pub events_received: Counter,
    /// Event messages written to subscribers' queues.
    pub events_delivered: Counter,
    /// Event messages lost: a full queue (slow consumer), or a re-read that failed (the subscribers
    /// get `RESYNC` instead).
    pub events_dropped: Counter,
    closed: Family<CloseLabels, Counter>,
    pub reread: LiveHistograms,
}

/// Per delivery batch of one subscriber identity: how long the re-read and the executions took, and
/// how many SQL statements they sent.
#[derive(Clone)]
pub struct LiveHistograms {
    pub seconds: Histogram,
    pub statements: Histogram,
}

impl Default for LiveHistograms {
    fn default() -> Self {
        Self {
            // 0.5 ms .. ~8 s
            seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 15)),
            statements: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
        }
    }
}

impl LiveMetrics {
    /// Counts a websocket the server closed, by reason.
    pub fn closed(&self, reason: &str) {
        self.closed
            .get_or_create(&CloseLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "ws_connections",
            "Open GraphQL websockets",
            self.connections.clone(),
        );
        registry.register(
            "live_subscriptions",
            "Active subscriptions",
            self.subscriptions.clone(),
        );
        registry.register(
            "live_events_received",
            "Change notifications heard from the database",
            self.events_received.clone(),
        );
        registry.register(
            "live_events_delivered",
            "Event messages queued to subscribers",
            self.events_delivered.clone(),
        );
        registry.register(
            "live_events_dropped",
            "Event messages lost to a full socket queue or a failed re-read",
            self.events_dropped.clone(),
        );
        registry.register(
            "ws_closed",
            "Websockets the server closed, by reason",
            self.closed.clone(),
        );
        registry.register(
            "live_reread_duration_seconds",
            "Time to re-read one batch of events for one subscriber identity and run its subscriptions",
            self.reread.seconds.clone(),
        );
        registry.register(
            "live_reread_sql_statements",
            "SQL statements one batch re-read sent (BEGIN, the context and COMMIT included)",
            self.reread.statements.clone(),
        );
    }
}

pub struct Metrics {
    /// Websockets and subscriptions.
    pub live: LiveMetrics,
    registry: Registry,
    operations: Family<OutcomeLabels, Counter>,
    duration: Histogram,
    statements: Histogram,
    pool_size: Gauge,
    pool_available: Gauge,
    pool_waiting: Gauge,
    rate_limit_share: Gauge,
    fleet_instances: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("deskgraph");
        let operations = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "graphql_operations",
            "GraphQL operations by outcome",
            operations.clone(),
        );
        // 1 ms .. ~16 s
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "graphql_operation_duration_seconds",
            "Time to run one GraphQL operation",
            duration.clone(),
        );
        let statements = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "graphql_operation_sql_statements",
            "SQL statements one GraphQL operation sent",
            statements.clone(),
        );
        let pool_size = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Open runtime connections",
            pool_size.clone(),
        );
        let pool_available = Gauge::default();
        registry.register(
            "db_pool_idle_connections",
            "Idle runtime connections",
            pool_available.clone(),
        );
        let pool_waiting = Gauge::default();
        registry.register(
            "db_pool_waiting",
            "Requests waiting for a connection",
            pool_waiting.clone(),
        );
        let rate_limit_share = Gauge::default();
        registry.register(
            "rate_limit_share_per_minute",
            "Operations per organization and minute this instance lets through (its share of the fleet-wide limit; 0 = off)",
            rate_limit_share.clone(),
        );
        let fleet_instances = Gauge::default();
        registry.register(
            "fleet_instances",
            "Live server instances sharing the rate limit, as last heard",
            fleet_instances.clone(),
        );
        let live = LiveMetrics::default();
        live.register(&mut registry);
        Self {
            live,
            registry,
            operations,
            duration,
            statements,
            pool_size,
            pool_available,
            pool_waiting,
            rate_limit_share,
            fleet_instances,
        }
    }

    /// Records one operation.
    pub fn observe(&self, outcome: &str, elapsed: Duration, statements: usize) {
        self.operations
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
        if statements > 0 {
            self.statements.observe(statements as f64);
        }
    }

    /// The exposition text, with the pool's and the rate limit's state as of now.
    pub fn render(&self, pool: &Pool, limiter: &OrgRateLimiter) -> String {
        self.rate_limit_share.set(i64::from(limiter.share()));
        self.fleet_instances.set(i64::from(limiter.instances()));
        let status = pool.status();
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.pool_size.set(as_i64(status.size));
        self.pool_available.set(as_i64(status.available));
        self.pool_waiting.set(as_i64(status.waiting));
        let mut text = String::new();
        if let Err(err) = encode(&mut text, &self.registry) {
            tracing::error!(error = %err, "failed to encode metrics");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_counted_by_outcome() {
        let metrics = Metrics::new();
        metrics.observe("ok", Duration::from_millis(3), 8);
        metrics.observe("ok", Duration::from_millis(5), 8);
        metrics.observe("forbidden", Duration::from_millis(1), 0);
        let pool = crate::db::pool_for("postgres://nobody@127.0.0.1:1/none", 1).unwrap();
        let limiter = OrgRateLimiter::new(120);
        limiter.set_instances(2);
        let text = metrics.render(&pool, &limiter);
        assert!(
            text.contains("deskgraph_graphql_operations_total{outcome=\"ok\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("deskgraph_graphql_operations_total{outcome=\"forbidden\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("deskgraph_graphql_operation_sql_statements_count 2"),
            "{text}"
        );
        assert!(text.contains("deskgraph_db_pool_connections 0"), "{text}");
        assert!(
            text.contains("deskgraph_rate_limit_share_per_minute 60"),
            "{text}"
        );
        assert!(text.contains("deskgraph_fleet_instances 2"), "{text}");
    }
}

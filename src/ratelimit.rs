//! Per-organization request rate limits (GCRA through `governor`), so one busy tenant cannot starve
//! the others, held for the whole fleet.
//!
//! The limit is fleet-wide without a database write per request: each instance announces itself in
//! `internal.server_instances` every few seconds ([`Fleet`], migration V7) and enforces
//! `limit / live instances` of it locally (never below a floor). When an instance joins, leaves or
//! dies (its announcement expires after three periods), the others rebalance at their next
//! heartbeat; between two heartbeats the fleet can let through one extra burst per instance that
//! joined.
//!
//! Rebalancing keeps every organization's spent budget: the limiter counts in cells, its quota is
//! the whole fleet limit (scaled by [`SCALE`] for precision), and a request costs
//! `limit × SCALE / share` cells. A new share changes the cost of the next request, never the state,
//! so instances coming and going (even a tenant starving one instance's heartbeat) cannot hand
//! anyone a fresh burst.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::db::Pool;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::db::{Access, TenantTx};
use crate::error::{AppError, AppResult, DbContext as _};

/// How often (in checks) idle keys are forgotten, bounding the limiter's memory.
const PRUNE_EVERY: u64 = 4096;

/// Cells per request at a share of the whole limit: costs are whole cells, so shares that do not
/// divide the limit are kept to within 1/64 of a request.
const SCALE: u32 = 64;

/// Statement timeout of a heartbeat.
const HEARTBEAT_TIMEOUT_MS: u64 = 5_000;

pub struct OrgRateLimiter {
    /// The fleet-wide limit per organization and minute; 0 is off.
    per_minute: u32,
    /// The least this instance enforces, whatever the number of instances.
    floor: u32,
    /// Live instances, as last heard (1 until the first heartbeat).
    instances: AtomicU32,
    /// This instance's share of `per_minute`.
    share: AtomicU32,
    /// Cells one request costs at this share.
    cost: AtomicU32,
    /// Cells per minute: `per_minute` × the scale (bursts of as many).
    cells: u32,
    limiter: Option<DefaultKeyedRateLimiter<Uuid>>,
    checks: AtomicU64,
}

impl OrgRateLimiter {
    /// `per_minute` requests per key and minute across the fleet, with bursts of as many; 0 turns
    /// limiting off. Until [`set_instances`](Self::set_instances) says otherwise, this instance is
    /// alone and enforces all of it.
    pub fn new(per_minute: u32) -> Self {
        Self::with_floor(per_minute, 1)
    }

    /// Like [`new`](Self::new); this instance never enforces less than `floor` per minute.
    pub fn with_floor(per_minute: u32, floor: u32) -> Self {
        // The scale shrinks for limits so large that the cells would not fit a u32.
        let scale = SCALE.min(u32::MAX / per_minute.max(1)).max(1);
        let cells = per_minute.saturating_mul(scale);
        let limiter = NonZeroU32::new(cells).map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        Self {
            per_minute,
            floor: floor.clamp(1, per_minute.max(1)),
            instances: AtomicU32::new(1),
            share: AtomicU32::new(per_minute),
            cost: AtomicU32::new(scale),
            cells,
            limiter,
            checks: AtomicU64::new(0),
        }
    }

    /// The share one of `instances` live instances enforces.
    fn share_for(&self, instances: u32) -> u32 {
        if self.per_minute == 0 {
            return 0;
        }
        self.per_minute.div_ceil(instances.max(1)).max(self.floor)
    }

    /// Rebalances after a heartbeat counted `instances` live instances (this one included).
    pub fn set_instances(&self, instances: u32) {
        let instances = instances.max(1);
        self.instances.store(instances, Ordering::Relaxed);
        let share = self.share_for(instances);
        if share == 0 {
            return;
        }
        // share ≤ per_minute, so the cost is at least the scale and at most all the cells.
        let cost = (self.cells / share).clamp(1, self.cells.max(1));
        self.cost.store(cost, Ordering::Relaxed);
        if self.share.swap(share, Ordering::Relaxed) != share {
            tracing::info!(instances, share_per_minute = share, "rate limit rebalanced");
        }
    }

    /// Requests per organization and minute this instance lets through now.
    pub fn share(&self) -> u32 {
        self.share.load(Ordering::Relaxed)
    }

    /// Live instances as last heard.
    pub fn instances(&self) -> u32 {
        self.instances.load(Ordering::Relaxed)
    }

    /// Counts one request for `key` (an organization, or a user acting without one).
    pub fn check(&self, key: Uuid) -> AppResult<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            limiter.retain_recent();
        }
        let cost = NonZeroU32::new(self.cost.load(Ordering::Relaxed)).unwrap_or(NonZeroU32::MIN);
        match limiter.check_key_n(&key, cost) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(AppError::RateLimited {
                    retry_after_secs: wait.as_secs().max(1),
                })
            }
            // A cost above the burst cannot happen (share ≥ 1); refuse rather than let it through.
            Err(_) => Err(AppError::RateLimited {
                retry_after_secs: 60,
            }),
        }
    }
}

/// This instance's membership of the fleet: a heartbeat task that keeps its announcement alive and
/// rebalances the rate limit.
pub struct Fleet {
    id: Uuid,
    pool: Pool,
    task: tokio::task::JoinHandle<()>,
}

impl Fleet {
    /// Announces this instance now and every `period` (entries live three periods), and tells
    /// `limiter` how many instances are live after each heartbeat. A failed heartbeat is logged and
    /// the last count kept.
    pub async fn join(pool: Pool, limiter: Arc<OrgRateLimiter>, period: Duration) -> Self {
        let id = Uuid::now_v7();
        let ttl = period.saturating_mul(3);
        let beat = {
            let pool = pool.clone();
            move || {
                let pool = pool.clone();
                async move { heartbeat(&pool, id, ttl).await }
            }
        };
        match beat().await {
            Ok(n) => limiter.set_instances(n),
            Err(err) => tracing::warn!(error = ?err, "first instance heartbeat failed"),
        }
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                match beat().await {
                    Ok(n) => limiter.set_instances(n),
                    Err(err) => tracing::warn!(error = ?err, "instance heartbeat failed"),
                }
            }
        });
        tracing::info!(instance = %id, "joined the fleet");
        Self { id, pool, task }
    }

    /// Stops the heartbeat without leaving, as a crashed process would: the entry expires after
    /// three periods (tests).
    pub fn abandon(self) {
        self.task.abort();
    }

    /// Stops the heartbeat and leaves the fleet, so the others take this share at once.
    pub async fn leave(self) {
        self.task.abort();
        if let Err(err) = leave(&self.pool, self.id).await {
            tracing::warn!(error = ?err, "leaving the fleet failed; the entry expires on its own");
        }
    }
}

async fn heartbeat(pool: &Pool, id: Uuid, ttl: Duration) -> AppResult<u32> {
    let tx = TenantTx::begin_system_unscoped(pool, Access::ReadWrite, HEARTBEAT_TIMEOUT_MS).await?;
    let ttl_secs = i32::try_from(ttl.as_secs().max(1)).unwrap_or(i32::MAX);
    let row = tx
        .query_one(
            "select auth_private.instance_heartbeat($1, $2)",
            &[&id, &ttl_secs],
        )
        .await
        .db_context("failed to announce this instance")?;
    tx.commit().await?;
    let live: i32 = row.try_get(0)?;
    Ok(u32::try_from(live).unwrap_or(1))
}

async fn leave(pool: &Pool, id: Uuid) -> AppResult<()> {
    let tx = TenantTx::begin_system_unscoped(pool, Access::ReadWrite, HEARTBEAT_TIMEOUT_MS).await?;
    tx.query_one("select auth_private.instance_leave($1)::text", &[&id])
        .await
        .db_context("failed to leave the fleet")?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_has_its_own_budget() {
        let limiter = OrgRateLimiter::new(3);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..3 {
            limiter.check(a).unwrap();
        }
        let err = limiter.check(a).unwrap_err();
        assert!(matches!(err, AppError::RateLimited { retry_after_secs } if retry_after_secs >= 1));
        limiter.check(b).unwrap();
    }

    #[test]
    fn zero_means_unlimited() {
        let limiter = OrgRateLimiter::new(0);
        limiter.set_instances(3);
        let key = Uuid::new_v4();
        for _ in 0..10_000 {
            limiter.check(key).unwrap();
        }
        assert_eq!(limiter.share(), 0);
    }

    #[test]
    fn the_share_divides_the_fleet_limit_and_never_falls_below_the_floor() {
        let limiter = OrgRateLimiter::with_floor(120, 10);
        assert_eq!(limiter.share(), 120);
        limiter.set_instances(2);
        assert_eq!(limiter.share(), 60);
        limiter.set_instances(7);
        assert_eq!(limiter.share(), 18, "rounded up");
        limiter.set_instances(50);
        assert_eq!(limiter.share(), 10, "the floor");
        limiter.set_instances(0);
        assert_eq!((limiter.instances(), limiter.share()), (1, 120));
    }

    #[test]
    fn a_rebalanced_limiter_enforces_the_new_share() {
        let limiter = OrgRateLimiter::new(4);
        limiter.set_instances(2);
        let key = Uuid::new_v4();
        limiter.check(key).unwrap();
        limiter.check(key).unwrap();
        assert!(limiter.check(key).is_err(), "two of four per instance");
    }

    #[test]
    fn rebalancing_keeps_what_each_organization_has_spent() {
        let limiter = OrgRateLimiter::new(6);
        limiter.set_instances(3);
        let key = Uuid::new_v4();
        // Half of this instance's share of two.
        limiter.check(key).unwrap();
        // The others leave: the share grows to six, and half of it is still spent (no fresh burst).
        limiter.set_instances(1);
        assert_eq!(limiter.share(), 6);
        let granted = (0..10).filter(|_| limiter.check(key).is_ok()).count();
        assert_eq!(granted, 3, "the unspent half of six");
        // Flapping back and forth hands out nothing new either.
        limiter.set_instances(3);
        limiter.set_instances(1);
        assert!(limiter.check(key).is_err());
    }

    #[test]
    fn huge_limits_do_not_overflow_the_cells() {
        let limiter = OrgRateLimiter::new(u32::MAX);
        limiter.set_instances(2);
        let key = Uuid::new_v4();
        for _ in 0..1_000 {
            limiter.check(key).unwrap();
        }
    }
}

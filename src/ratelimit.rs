//! Per-organization request rate limits (GCRA through `governor`), so one busy tenant cannot starve
//! the others. Limits are per server instance: behind a load balancer with N instances an organization
//! gets up to N times the configured rate (DESIGN §8 — no shared state between instances).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// How often (in checks) idle keys are forgotten, bounding the limiter's memory.
const PRUNE_EVERY: u64 = 4096;

pub struct OrgRateLimiter {
    limiter: Option<DefaultKeyedRateLimiter<Uuid>>,
    checks: AtomicU64,
}

impl OrgRateLimiter {
    /// `per_minute` requests per key and minute, with bursts of as many; 0 turns limiting off.
    pub fn new(per_minute: u32) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        Self {
            limiter,
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one request for `key` (an organization, or a user acting without one).
    pub fn check(&self, key: Uuid) -> AppResult<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            AppError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            }
        })
    }
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
        let key = Uuid::new_v4();
        for _ in 0..10_000 {
            limiter.check(key).unwrap();
        }
    }
}

//! Grants each organization its plan's monthly allowance, once per month, from every server instance
//! at once if need be: the ledger's idempotency key (`allowance:<month>:<plan>`, unique per
//! organization) makes the second grant a no-op, so no leader election is needed.

use std::time::Duration;

use crate::db::Pool;

use crate::billing::repo;
use crate::db::{Access, Credentials, TenantContext, TenantTx, TxOptions};
use crate::error::AppResult;

/// Organizations looked up per batch.
const BATCH: i32 = 500;
const STATEMENT_TIMEOUT_MS: u64 = 30_000;

/// Grants every allowance that is due now; returns how many were granted. Each organization's grant
/// runs in its own transaction, acting as `system` in that organization; one that fails is logged and
/// retried on the next run, and does not hold up the others.
pub async fn grant_due(pool: &Pool) -> AppResult<usize> {
    let mut granted = 0;
    let mut failed = 0;
    let mut after = None;
    loop {
        // Listing crosses organizations, so it goes through a SECURITY DEFINER function that returns
        // ids only (to the `system` role only); the transaction itself has no tenant.
        let tx =
            TenantTx::begin_system_unscoped(pool, Access::ReadOnly, STATEMENT_TIMEOUT_MS).await?;
        let due = repo::organizations_due_allowance(&tx, after, BATCH).await?;
        tx.commit().await?;
        for org_id in &due {
            match grant_one(pool, *org_id).await {
                Ok(Some(amount)) => {
                    granted += 1;
                    tracing::info!(org_id = %org_id, amount, "monthly allowance granted");
                }
                Ok(None) => {}
                Err(err) => {
                    failed += 1;
                    tracing::warn!(org_id = %org_id, error = ?err, "monthly allowance not granted; retried next run");
                }
            }
        }
        if due.len() < usize::try_from(BATCH).unwrap_or(usize::MAX) {
            if failed > 0 {
                tracing::warn!(failed, "some monthly allowances are still due");
            }
            return Ok(granted);
        }
        after = due.last().copied();
    }
}

/// Grants one organization's due allowance in a transaction of its own; the amount, if any was due.
async fn grant_one(pool: &Pool, org_id: uuid::Uuid) -> AppResult<Option<i64>> {
    let tx = TenantTx::begin(
        pool,
        &Credentials::Trusted(TenantContext::system(org_id)),
        TxOptions::new(Access::ReadWrite, STATEMENT_TIMEOUT_MS),
    )
    .await?;
    let entry = repo::ensure_allowance(&tx).await?;
    if entry.is_some() {
        super::credits_added(&tx).await?;
    }
    tx.commit().await?;
    Ok(entry.map(|e| e.amount))
}

/// Runs [`grant_due`] now and then every `interval`, until the task is aborted. Errors are logged and
/// retried on the next tick.
pub fn spawn(pool: Pool, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match grant_due(&pool).await {
                Ok(0) => tracing::debug!("no monthly allowance due"),
                Ok(n) => tracing::info!(organizations = n, "monthly allowances granted"),
                Err(err) => tracing::warn!(error = ?err, "granting monthly allowances failed"),
            }
        }
    })
}

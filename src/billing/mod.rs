//! Plans, seat limits and credits: the balance that pays for AI work, kept as an append-only ledger.
//!
//! The database does the bookkeeping (`migrations/V2__plans_credits.sql`): a ledger insert locks the
//! organization's balance row, skips a repeated idempotency key, refuses to go negative and applies
//! the entry. [`repo`] is the service API the rest of the server uses (`hold`, `capture`, `release`,
//! `grant`, the monthly allowance); [`graphql`] exposes it; [`allowance`] grants each month's
//! allowance in the background.
//!
//! What an AI analysis costs, and when it is held, captured or released, is decided in the `ai`
//! module: the price rule in `ai/price.rs`, the hold in `ai/request.rs` and the capture or release
//! in `ai/handlers.rs`, all through [`repo`]'s `hold`, `capture` and `release`.
//!
//! billing sits below `ai`, so it never calls the AI pipeline: when credits come in it enqueues the
//! `resume_analyses` job by its kind name ([`credits_added`]), and the pipeline's handler does the rest.

pub mod allowance;
pub mod graphql;
pub mod repo;

use futures_util::future::BoxFuture;

use crate::db::TenantTx;
use crate::error::AppResult;
use crate::identity::service::OrganizationFollowUp;
use crate::jobs::{self, kinds};
use crate::text_enum::text_enum;

/// Kinds of ledger entry. `amount` is the change to the available balance, `heldChange` the change to
/// held credits.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerKind {
    /// Credits given by an owner or admin.
    Grant,
    /// Credits bought.
    Purchase,
    /// The plan's monthly allowance (or an upgrade's top-up).
    Allowance,
    /// Credits reserved for work in progress: moved from the balance to held.
    Hold,
    /// Held credits spent on finished work.
    Capture,
    /// Held credits returned to the balance (work failed, or cost less than held).
    Release,
    /// Credits given back for a charge.
    Refund,
    /// A correction, either way.
    Adjustment,
}

text_enum!(LedgerKind, "ledger kind", {
    Grant => "GRANT",
    Purchase => "PURCHASE",
    Allowance => "ALLOWANCE",
    Hold => "HOLD",
    Capture => "CAPTURE",
    Release => "RELEASE",
    Refund => "REFUND",
    Adjustment => "ADJUSTMENT",
});

/// Credits came in (a grant, a plan change, an allowance): analyses that waited for credits get their
/// turn. The `resume_analyses` job finds them and holds for them oldest first; while one is queued,
/// another is not added.
pub async fn credits_added(tx: &TenantTx) -> AppResult<()> {
    jobs::enqueue(tx, &kinds::resume_analyses()).await?;
    Ok(())
}

/// A new organization starts with this month's allowance of its plan (identity's organization
/// creation runs this in the same transaction).
pub struct StartingAllowance;

impl OrganizationFollowUp for StartingAllowance {
    fn created<'a>(&'a self, tx: &'a TenantTx) -> BoxFuture<'a, AppResult<()>> {
        Box::pin(async move {
            repo::ensure_allowance(tx).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_stored_names() {
        for kind in LedgerKind::ALL {
            assert_eq!(kind.as_str().parse::<LedgerKind>().unwrap(), kind);
        }
        assert!("grant".parse::<LedgerKind>().is_err());
    }
}

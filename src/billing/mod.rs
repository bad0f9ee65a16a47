//! Plans, seat limits and credits: the balance that pays for AI work, kept as an append-only ledger.
//!
//! The database does the bookkeeping (`migrations/V2__plans_credits.sql`): a ledger insert locks the
//! organization's balance row, skips a repeated idempotency key, refuses to go negative and applies
//! the entry. [`repo`] is the service API the rest of the server uses (`hold`, `capture`, `release`,
//! `grant`, the monthly allowance); [`graphql`] exposes it; [`allowance`] grants each month's
//! allowance in the background.

pub mod allowance;
pub mod graphql;
pub mod repo;

use std::fmt;
use std::str::FromStr;

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

impl LedgerKind {
    pub const ALL: [LedgerKind; 8] = [
        LedgerKind::Grant,
        LedgerKind::Purchase,
        LedgerKind::Allowance,
        LedgerKind::Hold,
        LedgerKind::Capture,
        LedgerKind::Release,
        LedgerKind::Refund,
        LedgerKind::Adjustment,
    ];

    /// The value stored in `credit_ledger.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Grant => "GRANT",
            LedgerKind::Purchase => "PURCHASE",
            LedgerKind::Allowance => "ALLOWANCE",
            LedgerKind::Hold => "HOLD",
            LedgerKind::Capture => "CAPTURE",
            LedgerKind::Release => "RELEASE",
            LedgerKind::Refund => "REFUND",
            LedgerKind::Adjustment => "ADJUSTMENT",
        }
    }
}

impl fmt::Display for LedgerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LedgerKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LedgerKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown ledger kind {s:?}"))
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

//! Holds: reserving credits for work in progress, then capturing what it cost or releasing them.

use super::ledger::{NewEntry, ensure_allowance, insert_entry, post};
use crate::billing::LedgerKind;
use crate::db::TenantTx;
use crate::error::DbContext as _;
use crate::error::{AppError, AppResult};
use uuid::Uuid;

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// Reserved, not settled yet.
    Open,
    /// Settled by a capture of `charged` credits (the rest, if any, went back to the balance).
    Captured { charged: i64 },
    /// Settled by returning everything.
    Released,
}

/// Credits reserved for a piece of paid work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: Uuid,
    pub amount: i64,
    pub reference: Option<String>,
    pub state: HoldState,
}

/// Loads a hold and its settlement (`None` when there is no such hold in this organization).
pub async fn load_hold(tx: &TenantTx, hold_id: Uuid) -> AppResult<Option<Hold>> {
    let row = tx
        .query_opt(
            "select h.id, h.held_change as amount, h.reference,
                    count(s.id) as settlements,
                    coalesce(sum(-s.held_change) filter (where s.kind = 'CAPTURE'), 0)::bigint as charged,
                    count(s.id) filter (where s.kind = 'CAPTURE') as captures
               from credit_ledger h
               left join credit_ledger s on s.org_id = h.org_id and s.hold_id = h.id
              where h.org_id = (select app.current_org_id()) and h.id = $1 and h.kind = 'HOLD'
              group by h.id, h.held_change, h.reference",
            &[&hold_id],
        )
        .await
        .db_context("failed to load credit hold")?;
    let Some(row) = row else { return Ok(None) };
    let settlements: i64 = row.try_get("settlements")?;
    let captures: i64 = row.try_get("captures")?;
    let state = match (settlements, captures) {
        (0, _) => HoldState::Open,
        (_, 0) => HoldState::Released,
        _ => HoldState::Captured {
            charged: row.try_get("charged")?,
        },
    };
    Ok(Some(Hold {
        id: row.try_get("id")?,
        amount: row.try_get("amount")?,
        reference: row.try_get("reference")?,
        state,
    }))
}

pub(super) async fn hold_or_not_found(tx: &TenantTx, hold_id: Uuid) -> AppResult<Hold> {
    load_hold(tx, hold_id)
        .await?
        .ok_or(AppError::NotFound("credit hold"))
}

/// Reserves `amount` credits for work identified by `key`, or fails with `INSUFFICIENT_CREDITS`
/// (leaving the transaction usable). A repeated key returns the first hold, whatever its state now.
pub async fn hold(
    tx: &TenantTx,
    amount: i64,
    key: &str,
    reference: Option<&str>,
) -> AppResult<Hold> {
    if amount <= 0 {
        return Err(anyhow::anyhow!("a hold must be positive, got {amount}").into());
    }
    let key = format!("hold:{key}");
    let entry = NewEntry {
        kind: LedgerKind::Hold,
        amount: -amount,
        held_change: amount,
        hold_id: None,
        reference,
        note: None,
        key: &key,
    };
    let posted = match post(tx, &entry).await {
        // The month may have just turned: grant a due allowance and try once more.
        Err(AppError::InsufficientCredits { .. }) if ensure_allowance(tx).await?.is_some() => {
            post(tx, &entry).await?
        }
        other => other?,
    };
    let first = posted.entry();
    // A key names one piece of work: the same key for another amount or reference is a caller's bug
    // that would otherwise charge against the wrong hold.
    if first.kind != LedgerKind::Hold
        || first.held_change != amount
        || first.reference.as_deref() != reference
    {
        return Err(anyhow::anyhow!(
            "hold key {key} was first used for a different hold ({} of {}, reference {:?})",
            first.kind,
            first.held_change,
            first.reference
        )
        .into());
    }
    hold_or_not_found(tx, first.id).await
}

/// Settles a hold by charging `actual` credits, at most the held amount; the rest goes back to the
/// balance. A hold already settled (captured or released, here or by another process) is returned
/// unchanged.
pub async fn capture(tx: &TenantTx, hold_id: Uuid, actual: i64) -> AppResult<Hold> {
    let hold = hold_or_not_found(tx, hold_id).await?;
    if hold.state != HoldState::Open {
        return Ok(hold);
    }
    let charged = actual.clamp(0, hold.amount);
    let settle_key = format!("settle:{hold_id}");
    if charged == 0 {
        return release(tx, hold_id).await;
    }
    let rest = hold.amount - charged;
    let capture = NewEntry {
        kind: LedgerKind::Capture,
        amount: 0,
        held_change: -charged,
        hold_id: Some(hold_id),
        reference: hold.reference.as_deref(),
        note: None,
        key: &settle_key,
    };
    let rest_key = format!("{settle_key}:rest");
    let give_back = NewEntry {
        kind: LedgerKind::Release,
        amount: rest,
        held_change: -rest,
        hold_id: Some(hold_id),
        reference: hold.reference.as_deref(),
        note: Some("unused part of a capture"),
        key: &rest_key,
    };
    // The charge and the return of the rest are one step: both or neither. Only the caller whose
    // capture was written settles the rest; a skipped capture means someone else settled the hold.
    tx.savepoint("credit_capture", async {
        if insert_entry(tx, &capture).await?.is_some() && rest > 0 {
            insert_entry(tx, &give_back)
                .await?
                .ok_or_else(|| anyhow::anyhow!("the rest of hold {hold_id} was settled twice"))?;
        }
        Ok(())
    })
    .await?;
    hold_or_not_found(tx, hold_id).await
}

/// Returns all of a hold's credits to the balance. A hold already settled is returned unchanged.
pub async fn release(tx: &TenantTx, hold_id: Uuid) -> AppResult<Hold> {
    let hold = hold_or_not_found(tx, hold_id).await?;
    if hold.state != HoldState::Open {
        return Ok(hold);
    }
    post(
        tx,
        &NewEntry {
            kind: LedgerKind::Release,
            amount: hold.amount,
            held_change: -hold.amount,
            hold_id: Some(hold_id),
            reference: hold.reference.as_deref(),
            note: None,
            key: &format!("settle:{hold_id}"),
        },
    )
    .await?;
    hold_or_not_found(tx, hold_id).await
}

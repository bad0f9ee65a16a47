//! The credits service API. Every function runs on a [`TenantTx`] and acts for its organization
//! (`app.org_id`); RLS and the ledger trigger do the rest.
//!
//! Idempotency: every entry has a key unique per organization. Writing a key that exists changes
//! nothing and returns the first entry ([`Posted::Replayed`]), so each operation is safe to repeat and
//! to race from several processes. Keys are namespaced by operation (`grant:…`, `hold:…`,
//! `settle:<hold>`, `allowance:<month>:<plan>`) so that one operation's key can never replay another's.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::billing::LedgerKind;
use crate::db::TenantTx;
use crate::error::DbContext as _;
use crate::error::{AppError, AppResult, on_constraint};
use crate::identity::repo::{SEAT_LIMIT, no_free_seat};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    pub id: String,
    pub name: String,
    pub monthly_credits: i64,
    /// None: unlimited.
    pub seat_limit: Option<i32>,
}

const PLAN_COLUMNS: &str = "p.id, p.name, p.monthly_credits, p.seat_limit";

impl PlanRow {
    fn from_row(row: &Row) -> AppResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            monthly_credits: row.try_get("monthly_credits")?,
            seat_limit: row.try_get("seat_limit")?,
        })
    }
}

/// Every plan, cheapest first.
pub async fn plans(tx: &TenantTx) -> AppResult<Vec<PlanRow>> {
    let sql = format!("select {PLAN_COLUMNS} from plans p order by p.position, p.id");
    tx.query(&sql, &[])
        .await
        .db_context("failed to list plans")?
        .iter()
        .map(PlanRow::from_row)
        .collect()
}

/// The current organization's plan.
pub async fn current_plan(tx: &TenantTx) -> AppResult<Option<PlanRow>> {
    let sql = format!(
        "select {PLAN_COLUMNS} from organizations o join plans p on p.id = o.plan
          where o.id = (select app.current_org_id())"
    );
    tx.query_opt(&sql, &[])
        .await
        .db_context("failed to load the current plan")?
        .as_ref()
        .map(PlanRow::from_row)
        .transpose()
}

/// Credits available and held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    pub balance: i64,
    pub held: i64,
}

pub async fn balance(tx: &TenantTx) -> AppResult<Balance> {
    let row = tx
        .query_opt(
            "select balance, held from credit_balances where org_id = (select app.current_org_id())",
            &[],
        )
        .await
        .db_context("failed to load the credit balance")?;
    Ok(match row {
        Some(row) => Balance {
            balance: row.try_get(0)?,
            held: row.try_get(1)?,
        },
        None => Balance::default(),
    })
}

/// One ledger entry.
#[derive(Debug, Clone)]
pub struct EntryRow {
    pub id: Uuid,
    pub kind: LedgerKind,
    pub amount: i64,
    pub held_change: i64,
    pub balance_after: i64,
    pub held_after: i64,
    pub hold_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    pub actor_api_key_id: Option<Uuid>,
    pub actor_role: Option<String>,
    pub reference: Option<String>,
    pub note: Option<String>,
    pub idempotency_key: String,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

const ENTRY_COLUMNS: &str = "id, kind, amount, held_change, balance_after, held_after, hold_id, \
     actor_user_id, actor_api_key_id, actor_role, reference, note, idempotency_key, request_id, created_at";

impl EntryRow {
    fn from_row(row: &Row) -> AppResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            kind: row.try_get::<_, String>("kind")?.parse()?,
            amount: row.try_get("amount")?,
            held_change: row.try_get("held_change")?,
            balance_after: row.try_get("balance_after")?,
            held_after: row.try_get("held_after")?,
            hold_id: row.try_get("hold_id")?,
            actor_user_id: row.try_get("actor_user_id")?,
            actor_api_key_id: row.try_get("actor_api_key_id")?,
            actor_role: row.try_get("actor_role")?,
            reference: row.try_get("reference")?,
            note: row.try_get("note")?,
            idempotency_key: row.try_get("idempotency_key")?,
            request_id: row.try_get("request_id")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// A page of the ledger, newest first, after the `(created_at, id)` of the previous page's last entry.
pub async fn ledger_page(
    tx: &TenantTx,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<EntryRow>> {
    let (at, id) = after.unzip();
    let sql = format!(
        "select {ENTRY_COLUMNS} from credit_ledger
          where org_id = (select app.current_org_id())
            and ($1::timestamptz is null or (created_at, id) < ($1, $2))
          order by created_at desc, id desc
          limit $3"
    );
    tx.query(&sql, &[&at, &id, &limit])
        .await
        .db_context("failed to load a page of the credit ledger")?
        .iter()
        .map(EntryRow::from_row)
        .collect()
}

pub async fn ledger_count(tx: &TenantTx) -> AppResult<i64> {
    let row = tx
        .query_one(
            "select count(*) from credit_ledger where org_id = (select app.current_org_id())",
            &[],
        )
        .await
        .db_context("failed to count ledger entries")?;
    Ok(row.try_get(0)?)
}

pub async fn entry_by_key(tx: &TenantTx, key: &str) -> AppResult<Option<EntryRow>> {
    let sql = format!(
        "select {ENTRY_COLUMNS} from credit_ledger
          where org_id = (select app.current_org_id()) and idempotency_key = $1"
    );
    tx.query_opt(&sql, &[&key])
        .await
        .db_context("failed to load ledger entry by idempotency key")?
        .as_ref()
        .map(EntryRow::from_row)
        .transpose()
}

/// What writing an entry did.
#[derive(Debug, Clone)]
pub enum Posted {
    /// The entry was written now.
    New(EntryRow),
    /// An entry with this key existed: nothing changed; this is the first one.
    Replayed(EntryRow),
}

impl Posted {
    pub fn entry(&self) -> &EntryRow {
        match self {
            Posted::New(e) | Posted::Replayed(e) => e,
        }
    }
}

/// An entry to write. Actor, request id, time and balances are filled in by the database.
struct NewEntry<'a> {
    kind: LedgerKind,
    amount: i64,
    held_change: i64,
    hold_id: Option<Uuid>,
    reference: Option<&'a str>,
    note: Option<&'a str>,
    key: &'a str,
}

const INSUFFICIENT: &str = "credit_balances_balance_check";

/// Inserts one entry; `None` when the database skipped it (its key was used before, possibly by a
/// concurrent twin that committed while this one waited for the balance lock). Aborts the statement
/// on refusal: callers wrap it in a savepoint.
async fn insert_entry(tx: &TenantTx, e: &NewEntry<'_>) -> AppResult<Option<EntryRow>> {
    let sql = format!(
        "insert into credit_ledger
             (org_id, kind, amount, held_change, hold_id, reference, note, idempotency_key, balance_after, held_after)
         values ((select app.current_org_id()), $1, $2, $3, $4, $5, $6, $7, 0, 0)
         returning {ENTRY_COLUMNS}"
    );
    let kind = e.kind.as_str();
    let rows = tx
        .query_raw(
            &sql,
            &[
                &kind,
                &e.amount,
                &e.held_change,
                &e.hold_id,
                &e.reference,
                &e.note,
                &e.key,
            ],
        )
        .await
        .and_then(|rows| {
            rows.map_err(|err| {
                on_constraint(err, |c| {
                    (c == INSUFFICIENT).then_some(AppError::InsufficientCredits {
                        needed: -e.amount,
                        available: 0,
                    })
                })
            })
        })
        .db_context("failed to insert ledger entry")?;
    rows.first().map(EntryRow::from_row).transpose()
}

/// Writes one entry, idempotently. Runs in a savepoint, so that a refusal (too few credits) leaves the
/// caller's transaction usable: a ticket can still be created when its analysis cannot be paid for.
async fn post(tx: &TenantTx, e: &NewEntry<'_>) -> AppResult<Posted> {
    let written = tx.savepoint("credit_entry", insert_entry(tx, e)).await;
    match written {
        Ok(Some(entry)) => Ok(Posted::New(entry)),
        Ok(None) => entry_by_key(tx, e.key)
            .await?
            .map(Posted::Replayed)
            .ok_or_else(|| {
                anyhow::anyhow!("ledger entry {} was skipped but not found", e.key).into()
            }),
        Err(AppError::InsufficientCredits { needed, .. }) => {
            // A twin with this key may have spent the credits first: then this is its replay.
            if let Some(first) = entry_by_key(tx, e.key).await? {
                return Ok(Posted::Replayed(first));
            }
            Err(AppError::InsufficientCredits {
                needed,
                available: balance(tx).await?.balance,
            })
        }
        Err(err) => Err(err),
    }
}

/// Largest single grant, to catch typos (a grant of 10^12 credits is a mistake, not a decision).
pub const MAX_GRANT: i64 = 10_000_000;

/// Grants credits (owners and admins; the database refuses other roles). A repeated `key` returns the
/// first grant; reusing a key for a different amount is an error.
pub async fn grant(tx: &TenantTx, amount: i64, note: Option<&str>, key: &str) -> AppResult<Posted> {
    if !(1..=MAX_GRANT).contains(&amount) {
        return Err(AppError::invalid_field(
            "amount",
            format!("amount must be between 1 and {MAX_GRANT}"),
        ));
    }
    let key = format!("grant:{key}");
    let posted = post(
        tx,
        &NewEntry {
            kind: LedgerKind::Grant,
            amount,
            held_change: 0,
            hold_id: None,
            reference: None,
            note,
            key: &key,
        },
    )
    .await?;
    if let Posted::Replayed(first) = &posted
        && (first.kind != LedgerKind::Grant || first.amount != amount)
    {
        return Err(AppError::invalid_field(
            "idempotencyKey",
            "this idempotencyKey was already used for a different grant",
        ));
    }
    Ok(posted)
}

/// Grants this month's allowance of the organization's plan if it is still due (once per organization,
/// month and plan; after an upgrade, the difference). Returns the entry when one was written.
pub async fn ensure_allowance(tx: &TenantTx) -> AppResult<Option<EntryRow>> {
    // Amount, key and note are derived by the database; the values here are placeholders.
    insert_entry(
        tx,
        &NewEntry {
            kind: LedgerKind::Allowance,
            amount: 1,
            held_change: 0,
            hold_id: None,
            reference: None,
            note: None,
            key: "allowance",
        },
    )
    .await
}

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

async fn hold_or_not_found(tx: &TenantTx, hold_id: Uuid) -> AppResult<Hold> {
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

/// Moves the organization to `plan` (owners only; the database refuses others) and tops up this
/// month's allowance when the new plan's is larger. Fails when the plan has fewer seats than are used.
pub async fn change_plan(tx: &TenantTx, plan: &str) -> AppResult<PlanRow> {
    let updated = tx
        .query_raw(
            "update organizations set plan = $1 where id = (select app.current_org_id()) returning id",
            &[&plan],
        )
        .await
        .and_then(|rows| {
            rows.map_err(|e| {
                on_constraint(e, |c| match c {
                    "organizations_plan_fkey" => {
                        Some(AppError::invalid_field("plan", format!("unknown plan {plan:?}")))
                    }
                    SEAT_LIMIT => Some(no_free_seat()),
                    _ => None,
                })
            })
        })
        .db_context("failed to change plan")?;
    if updated.is_empty() {
        return Err(AppError::forbidden("only owners change the plan"));
    }
    ensure_allowance(tx).await?;
    current_plan(tx)
        .await?
        .ok_or_else(|| anyhow::anyhow!("organization has no plan").into())
}

/// Organizations still owed allowance this month, in id order after `after` (across organizations:
/// ids only).
pub async fn organizations_due_allowance(
    tx: &TenantTx,
    after: Option<Uuid>,
    limit: i32,
) -> AppResult<Vec<Uuid>> {
    tx.query(
        "select org_id from auth_private.organizations_due_allowance($1, $2)",
        &[&after, &limit],
    )
    .await
    .db_context("failed to list organizations due an allowance")?
    .iter()
    .map(|r| Ok(r.try_get(0)?))
    .collect()
}

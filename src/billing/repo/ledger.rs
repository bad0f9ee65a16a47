//! The balance and the ledger: reading entries, posting them idempotently, grants and the monthly allowance.

use crate::billing::LedgerKind;
use crate::db::TenantTx;
use crate::error::DbContext as _;
use crate::error::{AppError, AppResult, on_constraint};
use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

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

pub(super) const ENTRY_COLUMNS: &str = "id, kind, amount, held_change, balance_after, held_after, hold_id, \
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
pub(super) struct NewEntry<'a> {
    pub(super) kind: LedgerKind,
    pub(super) amount: i64,
    pub(super) held_change: i64,
    pub(super) hold_id: Option<Uuid>,
    pub(super) reference: Option<&'a str>,
    pub(super) note: Option<&'a str>,
    pub(super) key: &'a str,
}

pub(super) const INSUFFICIENT: &str = "credit_balances_balance_check";

/// Inserts one entry; `None` when the database skipped it (its key was used before, possibly by a
/// concurrent twin that committed while this one waited for the balance lock). Aborts the statement
/// on refusal: callers wrap it in a savepoint.
pub(super) async fn insert_entry(tx: &TenantTx, e: &NewEntry<'_>) -> AppResult<Option<EntryRow>> {
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
pub(super) async fn post(tx: &TenantTx, e: &NewEntry<'_>) -> AppResult<Posted> {
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

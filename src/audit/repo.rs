//! Reading the audit trail (owners and admins: RLS returns nothing to anyone else).

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::audit::chain::{ChainEntry, Verdict, Verifier};
use crate::db::TenantTx;
use crate::error::AppResult;
use crate::error::DbContext as _;

/// The columns of an entry, as [`entry_from_row`] reads them (`before`/`after` as jsonb text: what the
/// chain's hash covers, and what the listing parses into JSON).
const ENTRY_COLUMNS: &str = "org_id, seq, occurred_at, actor_user_id, actor_api_key_id, actor_role, \
     request_id, action, table_name, row_id, before::text as before, after::text as after, prev_hash, hash, \
     client_request_id";

fn entry_from_row(row: &Row) -> AppResult<ChainEntry> {
    Ok(ChainEntry {
        org_id: row.try_get("org_id")?,
        seq: row.try_get("seq")?,
        occurred_at: row.try_get("occurred_at")?,
        actor_user_id: row.try_get("actor_user_id")?,
        actor_api_key_id: row.try_get("actor_api_key_id")?,
        actor_role: row.try_get("actor_role")?,
        request_id: row.try_get("request_id")?,
        action: row.try_get("action")?,
        table_name: row.try_get("table_name")?,
        row_id: row.try_get("row_id")?,
        before: row.try_get("before")?,
        after: row.try_get("after")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
        client_request_id: row.try_get("client_request_id")?,
    })
}

/// Filters of an audit-log listing; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub table: Option<String>,
    pub action: Option<String>,
    /// A user or API key id.
    pub actor_id: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

// One statement for every combination of filters: each is `$n is null or …`.
const FILTERS: &str = "org_id = (select app.current_org_id())
    and ($1::text is null or table_name = $1)
    and ($2::text is null or action = $2)
    and ($3::uuid is null or actor_user_id = $3 or actor_api_key_id = $3)
    and ($4::timestamptz is null or occurred_at >= $4)
    and ($5::timestamptz is null or occurred_at < $5)";

/// A page of entries, newest first, before sequence number `before_seq`.
pub async fn page(
    tx: &TenantTx,
    filter: &AuditFilter,
    before_seq: Option<i64>,
    limit: i64,
) -> AppResult<Vec<ChainEntry>> {
    let sql = format!(
        "select {ENTRY_COLUMNS}
           from audit_log
          where {FILTERS} and ($6::bigint is null or seq < $6)
          order by seq desc
          limit $7"
    );
    tx.query(
        &sql,
        &[
            &filter.table,
            &filter.action,
            &filter.actor_id,
            &filter.since,
            &filter.until,
            &before_seq,
            &limit,
        ],
    )
    .await
    .db_context("failed to load a page of the audit log")?
    .iter()
    .map(entry_from_row)
    .collect()
}

pub async fn count(tx: &TenantTx, filter: &AuditFilter) -> AppResult<i64> {
    let sql = format!("select count(*) from audit_log where {FILTERS}");
    let row = tx
        .query_one(
            &sql,
            &[
                &filter.table,
                &filter.action,
                &filter.actor_id,
                &filter.since,
                &filter.until,
            ],
        )
        .await
        .db_context("failed to count audit log entries")?;
    Ok(row.try_get(0)?)
}

/// Entries verified per query: bounded memory and statement time, whatever the chain's length.
const VERIFY_CHUNK: i64 = 5_000;

/// Recomputes the organization's whole chain from the stored entries, in sequence order, and checks it
/// against the recorded head. The head is read first and only entries up to it are checked, so writes
/// committed meanwhile (READ COMMITTED) are neither missed nor mistaken for damage.
pub async fn verify_chain(tx: &TenantTx) -> AppResult<(Verdict, Option<(i64, Vec<u8>)>)> {
    // The head, and the highest stored entry, read together: an entry beyond the head (or a head
    // removed or lowered) is as suspect as a changed entry, so both bound what is read.
    let row = tx
        .query_one(
            "select h.last_seq, h.last_hash,
                    (select max(l.seq) from audit_log l where l.org_id = (select app.current_org_id()))
               from (select 1) one
               left join audit_heads h on h.org_id = (select app.current_org_id())",
            &[],
        )
        .await
        .db_context("failed to load the audit chain head")?;
    let head = match (
        row.try_get::<_, Option<i64>>(0)?,
        row.try_get::<_, Option<Vec<u8>>>(1)?,
    ) {
        (Some(seq), Some(hash)) => Some((seq, hash)),
        _ => None,
    };
    let max_seq: Option<i64> = row.try_get(2)?;
    let last = head
        .as_ref()
        .map_or(0, |(seq, _)| *seq)
        .max(max_seq.unwrap_or(0));
    let mut verifier = Verifier::new();
    // Fixed-width ranges of sequence numbers rather than LIMIT: each query touches at most one chunk of
    // rows whatever plan PostgreSQL picks (with stale statistics it may sort everything after `from`).
    let mut from = 1;
    while from <= last {
        let to = (from + VERIFY_CHUNK - 1).min(last);
        let sql = format!(
            "select {ENTRY_COLUMNS} from audit_log
              where org_id = (select app.current_org_id()) and seq between $1 and $2
              order by seq"
        );
        let chunk = tx
            .query(&sql, &[&from, &to])
            .await
            .db_context("failed to load audit log entries to verify")?;
        for row in chunk {
            verifier.push(&entry_from_row(&row)?);
        }
        from = to + 1;
    }
    Ok((verifier.finish(head.clone()), head))
}

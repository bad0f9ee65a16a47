//! GraphQL for the audit trail: `auditLog` and `verifyAuditChain` (owners and admins).

use async_graphql::{ComplexObject, Context, Enum, InputObject, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audit::chain::ChainEntry;
use crate::audit::repo::{self, AuditFilter};
use crate::authz::Object as Obj;
use crate::error::{AppError, AppResult};
use crate::graphql::input::parse_opt_id;
use crate::graphql::pagination::{self, Cursor, PageInfo};
use crate::graphql::session;
use crate::identity::graphql::Actor;

/// What a change did to a row.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Insert,
    Update,
    Delete,
}

impl AuditAction {
    fn as_str(self) -> &'static str {
        match self {
            AuditAction::Insert => "INSERT",
            AuditAction::Update => "UPDATE",
            AuditAction::Delete => "DELETE",
        }
    }

    fn parse(s: &str) -> AppResult<Self> {
        match s {
            "INSERT" => Ok(AuditAction::Insert),
            "UPDATE" => Ok(AuditAction::Update),
            "DELETE" => Ok(AuditAction::Delete),
            other => Err(anyhow::anyhow!("unknown audit action {other:?}").into()),
        }
    }
}

/// One recorded change.
#[derive(SimpleObject, Debug, Clone)]
pub struct AuditEntry {
    /// Position in the organization's chain: 1, 2, 3, … without gaps.
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: Actor,
    pub action: AuditAction,
    /// The table changed (e.g. `tickets`, `memberships`, `credit_ledger`).
    pub table: String,
    /// The changed row's id within its organization.
    pub row_id: Option<String>,
    /// The row before the change (null for an insert); secrets such as key hashes are left out.
    pub before: Option<Json<serde_json::Value>>,
    /// The row after the change (null for a delete).
    pub after: Option<Json<serde_json::Value>>,
    /// The request that made the change: the id the server generated for it (the response's
    /// `x-request-id`, in the server's logs), or `job:<id>:<attempt>` for background work. Never taken
    /// from the client.
    pub request_id: Option<String>,
    /// The `x-request-id` the client sent with that request, if it was a plain token (letters, digits,
    /// `-_.:`; at most 128 characters): what the client claimed, kept for matching with its logs, not
    /// trusted for correlation. Covered by the chain's hash like every other field.
    pub client_request_id: Option<String>,
}

impl TryFrom<ChainEntry> for AuditEntry {
    type Error = AppError;

    fn try_from(r: ChainEntry) -> AppResult<Self> {
        let seq = r.seq;
        let json = |text: Option<String>| -> AppResult<Option<Json<serde_json::Value>>> {
            text.map(|t| {
                serde_json::from_str(&t).map(Json).map_err(|e| {
                    anyhow::anyhow!("audit entry {seq} holds invalid JSON: {e}").into()
                })
            })
            .transpose()
        };
        Ok(Self {
            seq: r.seq,
            occurred_at: r.occurred_at,
            actor: Actor::new(r.actor_user_id, r.actor_api_key_id, r.actor_role),
            action: AuditAction::parse(&r.action)?,
            before: json(r.before)?,
            after: json(r.after)?,
            table: r.table_name,
            row_id: r.row_id,
            request_id: r.request_id,
            client_request_id: r.client_request_id,
        })
    }
}

#[derive(SimpleObject)]
pub struct AuditEdge {
    pub cursor: String,
    pub node: AuditEntry,
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct AuditConnection {
    pub edges: Vec<AuditEdge>,
    pub page_info: PageInfo,
    #[graphql(skip)]
    filter: AuditFilter,
}

#[ComplexObject]
impl AuditConnection {
    /// Number of entries matching the filter.
    async fn total_count(&self, ctx: &Context<'_>) -> AppResult<i64> {
        repo::count(&session(ctx)?.tx, &self.filter).await
    }
}

/// Narrows `auditLog`; every field is optional and they combine with AND.
#[derive(InputObject, Default)]
pub struct AuditLogFilter {
    /// Only changes to this table (e.g. `tickets`).
    pub table: Option<String>,
    pub action: Option<AuditAction>,
    /// Only changes by this user or API key.
    pub actor_id: Option<async_graphql::ID>,
    /// Only changes at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only changes before this time.
    pub until: Option<DateTime<Utc>>,
}

/// The result of recomputing the audit chain.
#[derive(SimpleObject)]
pub struct AuditChainVerification {
    /// True when every entry is intact, in sequence, and linked to the one before it.
    pub ok: bool,
    pub checked_entries: i64,
    /// The first entry that was changed, or the first missing one; null when `ok`.
    pub first_broken_seq: Option<i64>,
    /// The chain's last sequence number and hash (hex): keep them outside deskgraph, and a later
    /// rewrite of the whole chain shows as a different hash for the same sequence number.
    pub head_seq: i64,
    pub head_hash: Option<String>,
}

fn filter_from(input: Option<AuditLogFilter>) -> AppResult<AuditFilter> {
    let input = input.unwrap_or_default();
    let table = match input.table.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) if t.len() <= 63 && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
            Some(t.to_owned())
        }
        Some(_) => {
            return Err(AppError::invalid_field(
                "table",
                "table must be a table name (lowercase letters and underscores)",
            ));
        }
    };
    if let (Some(since), Some(until)) = (input.since, input.until)
        && since > until
    {
        return Err(AppError::invalid_field(
            "until",
            "until must not be before since",
        ));
    }
    Ok(AuditFilter {
        table,
        action: input.action.map(|a| a.as_str().to_owned()),
        actor_id: parse_opt_id("actorId", input.actor_id.as_ref())?,
        since: input.since,
        until: input.until,
    })
}

fn seq_cursor(raw: Option<&str>) -> AppResult<Option<i64>> {
    Cursor::decode_opt(raw)?
        .map(|c| {
            c.key.parse::<i64>().map_err(|_| {
                AppError::invalid_field("after", "after is not a cursor returned by this list")
            })
        })
        .transpose()
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// Every change to the organization's data, newest first (owners and admins).
    #[graphql(complexity = "pagination::page_complexity(first, child_complexity)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last entry of the previous page.")] after: Option<String>,
        filter: Option<AuditLogFilter>,
    ) -> AppResult<AuditConnection> {
        let s = session(ctx)?;
        s.require(Obj::AuditLog, "read")?;
        let limit = pagination::page_size(first)?;
        let filter = filter_from(filter)?;
        let before_seq = seq_cursor(after.as_deref())?;
        let rows = repo::page(&s.tx, &filter, before_seq, limit + 1).await?;
        let (edges, page_info) = pagination::page(rows, limit, before_seq.is_some(), |r| Cursor {
            key: r.seq.to_string(),
            id: Uuid::nil(),
        });
        Ok(AuditConnection {
            edges: edges
                .into_iter()
                .map(|(cursor, r)| {
                    Ok(AuditEdge {
                        cursor,
                        node: r.try_into()?,
                    })
                })
                .collect::<AppResult<_>>()?,
            page_info,
            filter,
        })
    }

    /// Recomputes the organization's audit chain from its entries and reports the first one that does
    /// not fit (owners and admins). Reads every entry: seconds for hundreds of thousands.
    async fn verify_audit_chain(&self, ctx: &Context<'_>) -> AppResult<AuditChainVerification> {
        let s = session(ctx)?;
        s.require(Obj::AuditLog, "read")?;
        let started = std::time::Instant::now();
        let (verdict, head) = repo::verify_chain(&s.tx).await?;
        tracing::info!(
            ok = verdict.ok,
            checked = verdict.checked_entries,
            first_broken_seq = verdict.first_broken_seq,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "audit chain verified"
        );
        if !verdict.ok {
            tracing::warn!(
                first_broken_seq = verdict.first_broken_seq,
                "audit chain is broken"
            );
        }
        Ok(AuditChainVerification {
            ok: verdict.ok,
            checked_entries: verdict.checked_entries,
            first_broken_seq: verdict.first_broken_seq,
            head_seq: head.as_ref().map_or(0, |(seq, _)| *seq),
            head_hash: head.map(|(_, hash)| hex::encode(hash)),
        })
    }
}

//! The analytics SQL. Every statement reads through the caller's transaction (RLS keeps it to the
//! organization) and filters on `(select app.analytics_reader())` — a one-time filter the planner
//! cannot drop, unlike an unused CTE — which refuses any role but owner, admin and analyst in the
//! database itself. Buckets arrive as a sorted `timestamptz[]` of start instants;
//! `width_bucket` places each row (1-based, in step with the array).

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::db::TenantTx;
use crate::error::{AppError, AppResult, DbContext as _};

/// A series row: per bucket, two counts.
pub struct BucketCounts {
    pub start: DateTime<Utc>,
    pub first: i64,
    pub second: i64,
}

/// Count, mean, median and 90th percentile of a set of durations in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub count: i64,
    pub mean: Option<f64>,
    pub median: Option<f64>,
    pub p90: Option<f64>,
}

/// One group of a breakdown: its dimension, key and count.
pub struct Group {
    pub dimension: String,
    pub key: Option<String>,
    pub label: Option<String>,
    pub count: i64,
}

pub struct AiUsage {
    pub analyses: i64,
    pub done: i64,
    pub failed: i64,
    pub credits_charged: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

async fn query(
    tx: &TenantTx,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    what: &'static str,
) -> AppResult<Vec<Row>> {
    match tx.query(sql, params).await {
        Err(AppError::Internal(cause))
            if cause
                .downcast_ref::<tokio_postgres::Error>()
                .and_then(tokio_postgres::Error::code)
                == Some(&SqlState::INSUFFICIENT_PRIVILEGE) =>
        {
            Err(AppError::forbidden(
                "analytics are for owners, admins and analyst keys",
            ))
        }
        result => result.db_context(what),
    }
}

/// Gives the operation's transaction room to sort and hash a large tenant's window in memory (the
/// server's default `work_mem` of 4 MB spills the latest-analysis sort to disk at ~50,000 tickets).
pub async fn allow_memory(tx: &TenantTx) -> AppResult<()> {
    tx.query("select set_config('work_mem', '32MB', true)", &[])
        .await
        .db_context("failed to set work_mem")?;
    Ok(())
}

/// Tickets created and resolved per bucket, and the tickets open at `from`.
pub async fn ticket_volume(
    tx: &TenantTx,
    buckets: &[DateTime<Utc>],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    workspace: Option<Uuid>,
) -> AppResult<(i64, Vec<BucketCounts>)> {
    const SQL: &str = "
        with created as (
            select width_bucket(t.created_at, $1::timestamptz[]) as i, count(*) as n
              from tickets t
             where t.created_at >= $2 and t.created_at < $3
               and ($4::uuid is null or t.workspace_id = $4)
             group by 1),
        resolved as (
            select width_bucket(t.resolved_at, $1::timestamptz[]) as i, count(*) as n
              from tickets t
             where t.resolved_at >= $2 and t.resolved_at < $3
               and ($4::uuid is null or t.workspace_id = $4)
             group by 1),
        -- Open at `from`: filed before it and unresolved now, or resolved since (index-only scans
        -- of tickets_unresolved_idx and tickets_resolved_idx, rather than counting all history).
        open_at_from as (
            select (select count(*) from tickets t
                     where t.resolved_at is null and t.created_at < $2
                       and ($4::uuid is null or t.workspace_id = $4))
                 + (select count(*) from tickets t
                     where t.resolved_at >= $2 and t.created_at < $2
                       and ($4::uuid is null or t.workspace_id = $4)) as n)
        select b.start, coalesce(c.n, 0) as created, coalesce(r.n, 0) as resolved, o.n as open_at_from
          from unnest($1::timestamptz[]) with ordinality as b(start, i)
          cross join open_at_from o
          left join created c on c.i = b.i
          left join resolved r on r.i = b.i
         where (select app.analytics_reader())
         order by b.i";
    let rows = query(
        tx,
        SQL,
        &[&buckets, &from, &to, &workspace],
        "failed to count ticket volume",
    )
    .await?;
    let open = match rows.first() {
        Some(row) => row.try_get("open_at_from")?,
        None => 0,
    };
    let points = rows
        .iter()
        .map(|row| {
            Ok(BucketCounts {
                start: row.try_get("start")?,
                first: row.try_get("created")?,
                second: row.try_get("resolved")?,
            })
        })
        .collect::<AppResult<_>>()?;
    Ok((open, points))
}

fn stats(row: &Row) -> AppResult<Stats> {
    Ok(Stats {
        count: row.try_get("n")?,
        mean: row.try_get("mean")?,
        median: row.try_get("median")?,
        p90: row.try_get("p90")?,
    })
}

/// Count, mean, median and p90 of the seconds `durations` (a `select … as s`, with the window in
/// `$1`/`$2` and the workspace in `$3`) yields.
async fn duration_stats(
    tx: &TenantTx,
    durations: &str,
    (from, to, workspace): (DateTime<Utc>, DateTime<Utc>, Option<Uuid>),
    what: &'static str,
) -> AppResult<Stats> {
    let sql = format!(
        // Rounded to the millisecond: a parallel sum may differ in its last bits from run to run, and
        // an analyst's cached response (its ETag) must not change when the data did not.
        "select count(s) as n, round(avg(s)::numeric, 3)::float8 as mean,
                round(percentile_cont(0.5) within group (order by s)::numeric, 3)::float8 as median,
                round(percentile_cont(0.9) within group (order by s)::numeric, 3)::float8 as p90
           from ({durations}) d"
    );
    let rows = query(tx, &sql, &[&from, &to, &workspace], what).await?;
    rows.first().map(stats).unwrap_or(Ok(Stats::default()))
}

/// Seconds from filing to resolution, of tickets resolved in the window.
pub async fn resolution_time(
    tx: &TenantTx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    workspace: Option<Uuid>,
) -> AppResult<Stats> {
    const DURATIONS: &str = "
        select extract(epoch from t.resolved_at - t.created_at)::float8 as s
          from tickets t
         where t.resolved_at >= $1 and t.resolved_at < $2
           and ($3::uuid is null or t.workspace_id = $3)
           and (select app.analytics_reader())";
    duration_stats(
        tx,
        DURATIONS,
        (from, to, workspace),
        "failed to measure resolution times",
    )
    .await
}

/// Seconds from filing to the first public reply by a member, of tickets filed in the window.
pub async fn first_response_time(
    tx: &TenantTx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    workspace: Option<Uuid>,
) -> AppResult<Stats> {
    // Replies come after their ticket, so the first replies of tickets filed in the window are among
    // the replies written since `from`: one pass over those (an index-only scan of
    // ticket_comments_first_reply_idx) and a hash join, instead of a look-up per ticket.
    const DURATIONS: &str = "
        select extract(epoch from r.first_at - t.created_at)::float8 as s
          from tickets t
          join (select c.ticket_id, min(c.created_at) as first_at
                  from ticket_comments c
                 where c.created_at >= $1 and not c.internal
                   and c.author_id is not null and c.api_key_id is null
                 group by c.ticket_id) r on r.ticket_id = t.id
         where t.created_at >= $1 and t.created_at < $2
           and ($3::uuid is null or t.workspace_id = $3)
           and (select app.analytics_reader())";
    duration_stats(
        tx,
        DURATIONS,
        (from, to, workspace),
        "failed to measure first responses",
    )
    .await
}

/// Tickets filed in the window, counted by every dimension at once (one pass, grouping sets). The
/// AI dimensions come from each ticket's latest finished analysis.
pub async fn breakdowns(
    tx: &TenantTx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    workspace: Option<Uuid>,
) -> AppResult<Vec<Group>> {
    // A ticket's analyses are requested after it was filed, so the latest finished one of each ticket
    // filed in the window is among the analyses requested since `from`: one pass and a hash join
    // rather than a look-up per ticket.
    const SQL: &str = "
        with latest as (
            select distinct on (a.ticket_id) a.ticket_id, a.category, a.sentiment, a.language
              from ticket_analyses a
             where a.created_at >= $1 and a.status = 'done'
             order by a.ticket_id, a.created_at desc, a.id desc),
        filed as (
            select t.status, t.priority, t.workspace_id, t.assignee_id,
                   a.category, a.sentiment, a.language
              from tickets t
              left join latest a on a.ticket_id = t.id
             where t.created_at >= $1 and t.created_at < $2
               and ($3::uuid is null or t.workspace_id = $3)
               and (select app.analytics_reader())),
        counted as (
            select case
                     when grouping(status) = 0 then 'STATUS'
                     when grouping(priority) = 0 then 'PRIORITY'
                     when grouping(workspace_id) = 0 then 'WORKSPACE'
                     when grouping(assignee_id) = 0 then 'ASSIGNEE'
                     when grouping(category) = 0 then 'CATEGORY'
                     when grouping(sentiment) = 0 then 'SENTIMENT'
                     else 'LANGUAGE'
                   end as dimension,
                   coalesce(status, priority, workspace_id::text, assignee_id::text, category,
                            sentiment, language) as key,
                   count(*) as n
              from filed
             group by grouping sets ((status), (priority), (workspace_id), (assignee_id), (category),
                                     (sentiment), (language)))
        select c.dimension, c.key, c.n,
               case c.dimension
                 when 'WORKSPACE' then (select w.name from workspaces w where w.id = c.key::uuid)
                 when 'ASSIGNEE' then (select u.name from users u where u.id = c.key::uuid)
               end as label
          from counted c";
    let rows = query(
        tx,
        SQL,
        &[&from, &to, &workspace],
        "failed to count tickets by dimension",
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Group {
                dimension: row.try_get("dimension")?,
                key: row.try_get("key")?,
                label: row.try_get("label")?,
                count: row.try_get("n")?,
            })
        })
        .collect()
}

/// Analysis runs requested in the window (of tickets of the workspace, when given).
pub async fn ai_usage(
    tx: &TenantTx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    workspace: Option<Uuid>,
) -> AppResult<AiUsage> {
    const SQL: &str = "
        select count(*) as analyses,
               count(*) filter (where a.status = 'done') as done,
               count(*) filter (where a.status = 'failed') as failed,
               coalesce(sum(a.credits_charged), 0)::bigint as credits_charged,
               coalesce(sum(a.prompt_tokens), 0)::bigint as prompt_tokens,
               coalesce(sum(a.completion_tokens), 0)::bigint as completion_tokens
          from ticket_analyses a
         where a.created_at >= $1 and a.created_at < $2
           and ($3::uuid is null
                or exists (select 1 from tickets t where t.id = a.ticket_id and t.workspace_id = $3))
           and (select app.analytics_reader())";
    let rows = query(
        tx,
        SQL,
        &[&from, &to, &workspace],
        "failed to count AI usage",
    )
    .await?;
    let row = rows
        .first()
        .ok_or_else(|| AppError::from(anyhow::anyhow!("AI usage returned no row")))?;
    Ok(AiUsage {
        analyses: row.try_get("analyses")?,
        done: row.try_get("done")?,
        failed: row.try_get("failed")?,
        credits_charged: row.try_get("credits_charged")?,
        prompt_tokens: row.try_get("prompt_tokens")?,
        completion_tokens: row.try_get("completion_tokens")?,
    })
}

/// Credits captured for AI work and credits that came in, per bucket (organization-wide).
pub async fn credit_usage(
    tx: &TenantTx,
    buckets: &[DateTime<Utc>],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Vec<BucketCounts>> {
    const SQL: &str = "
        with moved as (
            select width_bucket(l.created_at, $1::timestamptz[]) as i,
                   coalesce(sum(-l.held_change) filter (where l.kind = 'CAPTURE'), 0)::bigint as charged,
                   coalesce(sum(l.amount) filter (
                       where l.kind in ('GRANT', 'PURCHASE', 'ALLOWANCE', 'REFUND', 'ADJUSTMENT')
                         and l.amount > 0), 0)::bigint as added
              from credit_ledger l
             where l.created_at >= $2 and l.created_at < $3
             group by 1)
        select b.start, coalesce(m.charged, 0) as charged, coalesce(m.added, 0) as added
          from unnest($1::timestamptz[]) with ordinality as b(start, i)
          left join moved m on m.i = b.i
         where (select app.analytics_reader())
         order by b.i";
    let rows = query(
        tx,
        SQL,
        &[&buckets, &from, &to],
        "failed to count credit usage",
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(BucketCounts {
                start: row.try_get("start")?,
                first: row.try_get("charged")?,
                second: row.try_get("added")?,
            })
        })
        .collect()
}

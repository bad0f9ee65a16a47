//! `ticket_analyses` rows. Reads run under the caller's RLS; results are written by the server's own
//! work (`app.role = system`, which the table's policy requires for updates).

use chrono::{DateTime, Utc};
use tokio_postgres::Row;
use uuid::Uuid;

use super::Analysis;
use crate::db::TenantTx;
use crate::error::AppResult;
use crate::error::DbContext as _;
use crate::text_enum::text_enum;

/// Where an analysis run is.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalysisStatus {
    /// Paid for (credits held) and queued.
    Pending,
    /// A worker is on it.
    Running,
    Done,
    /// Failed for good; its credits were released.
    Failed,
    /// Not enough credits: nothing is queued until credits are granted.
    InsufficientCredits,
}

text_enum!(AnalysisStatus, "analysis status", {
    Pending => "pending",
    Running => "running",
    Done => "done",
    Failed => "failed",
    InsufficientCredits => "insufficient_credits",
});

impl AnalysisStatus {
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

#[derive(Debug, Clone)]
pub struct AnalysisRow {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub status: AnalysisStatus,
    pub reason: String,
    pub content_hash: String,
    pub provider: String,
    pub model: String,
    pub embedding_model: Option<String>,
    pub prompt_version: String,
    pub priority: Option<String>,
    pub category: Option<String>,
    pub skills: Vec<String>,
    pub sentiment: Option<String>,
    pub language: Option<String>,
    pub summary: Option<String>,
    pub suggested_reply: Option<String>,
    pub confidence: Option<f32>,
    pub prompt_tokens: Option<i32>,
    pub completion_tokens: Option<i32>,
    pub embedding_tokens: Option<i32>,
    pub credits_held: i64,
    pub credits_charged: i64,
    pub hold_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub attempts: i32,
    pub duration_ms: Option<i32>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "a.id, a.ticket_id, a.status, a.reason, a.content_hash, a.provider, a.model, \
    a.embedding_model, a.prompt_version, a.priority, a.category, a.skills, a.sentiment, a.language, \
    a.summary, a.suggested_reply, a.confidence, a.prompt_tokens, a.completion_tokens, a.embedding_tokens, \
    a.credits_held, a.credits_charged, a.hold_id, a.job_id, a.attempts, a.duration_ms, a.error, \
    a.created_at, a.started_at, a.finished_at";

impl AnalysisRow {
    fn from_row(row: &Row) -> AppResult<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            ticket_id: row.try_get("ticket_id")?,
            status: row
                .try_get::<_, &str>("status")?
                .parse::<AnalysisStatus>()?,
            reason: row.try_get("reason")?,
            content_hash: row.try_get("content_hash")?,
            provider: row.try_get("provider")?,
            model: row.try_get("model")?,
            embedding_model: row.try_get("embedding_model")?,
            prompt_version: row.try_get("prompt_version")?,
            priority: row.try_get("priority")?,
            category: row.try_get("category")?,
            skills: row.try_get("skills")?,
            sentiment: row.try_get("sentiment")?,
            language: row.try_get("language")?,
            summary: row.try_get("summary")?,
            suggested_reply: row.try_get("suggested_reply")?,
            confidence: row.try_get("confidence")?,
            prompt_tokens: row.try_get("prompt_tokens")?,
            completion_tokens: row.try_get("completion_tokens")?,
            embedding_tokens: row.try_get("embedding_tokens")?,
            credits_held: row.try_get("credits_held")?,
            credits_charged: row.try_get("credits_charged")?,
            hold_id: row.try_get("hold_id")?,
            job_id: row.try_get("job_id")?,
            attempts: row.try_get("attempts")?,
            duration_ms: row.try_get("duration_ms")?,
            error: row.try_get("error")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

fn rows(rows: &[Row]) -> AppResult<Vec<AnalysisRow>> {
    rows.iter().map(AnalysisRow::from_row).collect()
}

pub async fn analysis(tx: &TenantTx, id: Uuid) -> AppResult<Option<AnalysisRow>> {
    let sql = format!("select {COLUMNS} from ticket_analyses a where a.id = $1");
    tx.query_opt(&sql, &[&id])
        .await
        .db_context("failed to load analysis")?
        .as_ref()
        .map(AnalysisRow::from_row)
        .transpose()
}

/// The latest analysis of each of `ticket_ids` (one statement for a whole page of tickets).
pub async fn latest_for_tickets(tx: &TenantTx, ticket_ids: &[Uuid]) -> AppResult<Vec<AnalysisRow>> {
    let sql = format!(
        "select distinct on (a.ticket_id) {COLUMNS} from ticket_analyses a
          where a.ticket_id = any($1)
          order by a.ticket_id, a.created_at desc, a.id desc"
    );
    rows(
        &tx.query(&sql, &[&ticket_ids])
            .await
            .db_context("failed to load the latest analyses of tickets")?,
    )
}

/// A ticket's analyses, newest first.
pub async fn history(tx: &TenantTx, ticket_id: Uuid, limit: i64) -> AppResult<Vec<AnalysisRow>> {
    let sql = format!(
        "select {COLUMNS} from ticket_analyses a where a.ticket_id = $1
          order by a.created_at desc, a.id desc limit $2"
    );
    rows(
        &tx.query(&sql, &[&ticket_id, &limit])
            .await
            .db_context("failed to load analysis history")?,
    )
}

/// An analysis of this ticket version that is still queued, running or waiting for credits (asking
/// again joins it).
pub async fn open_for_version(
    tx: &TenantTx,
    ticket_id: Uuid,
    content_hash: &str,
) -> AppResult<Option<AnalysisRow>> {
    let sql = format!(
        "select {COLUMNS} from ticket_analyses a
          where a.ticket_id = $1 and a.content_hash = $2
            and a.status in ('pending', 'running', 'insufficient_credits')
          order by a.created_at desc limit 1"
    );
    tx.query_opt(&sql, &[&ticket_id, &content_hash])
        .await
        .db_context("failed to load the open analysis of a ticket version")?
        .as_ref()
        .map(AnalysisRow::from_row)
        .transpose()
}

/// A new analysis request.
pub struct NewAnalysis<'a> {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub status: AnalysisStatus,
    pub reason: &'a str,
    pub content_hash: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub credits_held: i64,
    pub hold_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
}

pub async fn insert(tx: &TenantTx, a: &NewAnalysis<'_>) -> AppResult<AnalysisRow> {
    let sql = format!(
        "insert into ticket_analyses as a (org_id, id, ticket_id, status, reason, content_hash, provider,
                 model, prompt_version, credits_held, hold_id, job_id, requested_by, requested_by_api_key)
         values ((select app.current_org_id()), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                 (select app.current_user_id()), (select app.current_api_key_id()))
         returning {COLUMNS}"
    );
    let row = tx
        .query_one(
            &sql,
            &[
                &a.id,
                &a.ticket_id,
                &a.status.as_str(),
                &a.reason,
                &a.content_hash,
                &a.provider,
                &a.model,
                &super::PROMPT_VERSION,
                &a.credits_held,
                &a.hold_id,
                &a.job_id,
            ],
        )
        .await
        .db_context("failed to insert analysis")?;
    AnalysisRow::from_row(&row)
}

/// A worker started attempt `attempt` of the analysis. False when it is already finished.
pub async fn mark_running(tx: &TenantTx, id: Uuid, attempt: i32) -> AppResult<bool> {
    let n = tx
        .execute(
            "update ticket_analyses set status = 'running', attempts = $2,
                    started_at = coalesce(started_at, clock_timestamp())
              where id = $1 and status in ('pending', 'running')",
            &[&id, &attempt],
        )
        .await
        .db_context("failed to mark analysis running")?;
    Ok(n == 1)
}

/// What a successful run records.
pub struct Done<'a> {
    pub analysis: &'a Analysis,
    pub provider: &'a str,
    pub model: &'a str,
    pub embedding_model: Option<&'a str>,
    pub embedding_tokens: Option<u32>,
    pub credits_charged: i64,
    pub duration_ms: i32,
}

fn opt_i32(v: Option<u32>) -> Option<i32> {
    v.map(|v| i32::try_from(v).unwrap_or(i32::MAX))
}

pub async fn record_done(tx: &TenantTx, id: Uuid, d: &Done<'_>) -> AppResult<()> {
    let a = d.analysis;
    // f32 is what `real` stores; the confidence was validated to 0..=1.
    let confidence = a.confidence as f32;
    tx.execute(
        "update ticket_analyses set status = 'done', error = null, finished_at = clock_timestamp(),
                provider = $2, model = $3, embedding_model = $4, prompt_version = $5,
                priority = $6, category = $7, skills = $8, sentiment = $9, language = $10,
                summary = $11, suggested_reply = $12, confidence = $13,
                prompt_tokens = $14, completion_tokens = $15, embedding_tokens = $16,
                credits_charged = $17, duration_ms = $18
          where id = $1",
        &[
            &id,
            &d.provider,
            &d.model,
            &d.embedding_model,
            &super::PROMPT_VERSION,
            &a.priority.as_str(),
            &a.category.as_str(),
            &a.skills,
            &a.sentiment.as_str(),
            &a.language,
            &a.summary,
            &a.suggested_reply,
            &confidence,
            &opt_i32(a.prompt_tokens),
            &opt_i32(a.completion_tokens),
            &opt_i32(d.embedding_tokens),
            &d.credits_charged,
            &d.duration_ms,
        ],
    )
    .await
    .db_context("failed to record analysis result")?;
    Ok(())
}

/// Records a failed attempt: `failed` for good (credits released by the caller), or back to
/// `pending` until the retry.
pub async fn record_failure(tx: &TenantTx, id: Uuid, error: &str, for_good: bool) -> AppResult<()> {
    tx.execute(
        "update ticket_analyses set
                status = case when $3 then 'failed' else 'pending' end,
                error = $2,
                finished_at = case when $3 then clock_timestamp() end
          where id = $1 and status in ('pending', 'running', 'insufficient_credits')",
        &[&id, &error, &for_good],
    )
    .await
    .db_context("failed to record analysis failure")?;
    Ok(())
}

/// Analyses waiting for credits, oldest first (locked: one resumer at a time).
pub async fn waiting_for_credits(tx: &TenantTx, limit: i64) -> AppResult<Vec<AnalysisRow>> {
    let sql = format!(
        "select {COLUMNS} from ticket_analyses a where a.status = 'insufficient_credits'
          order by a.created_at, a.id limit $1 for update"
    );
    rows(
        &tx.query(&sql, &[&limit])
            .await
            .db_context("failed to load analyses waiting for credits")?,
    )
}

pub async fn any_waiting_for_credits(tx: &TenantTx) -> AppResult<bool> {
    Ok(tx
        .query_opt(
            "select 1 from ticket_analyses where status = 'insufficient_credits' limit 1",
            &[],
        )
        .await
        .db_context("failed to check for analyses waiting for credits")?
        .is_some())
}

/// What a waiting analysis gets when its credits arrive.
pub struct Queued<'a> {
    /// The ticket version it will analyse (the ticket may have changed while it waited).
    pub content_hash: &'a str,
    pub provider: &'a str,
    pub model: &'a str,
    pub credits_held: i64,
    pub hold_id: Uuid,
    pub job_id: Uuid,
}

/// A waiting analysis got its credits and was queued.
pub async fn mark_queued(tx: &TenantTx, id: Uuid, q: &Queued<'_>) -> AppResult<()> {
    tx.execute(
        "update ticket_analyses set status = 'pending', content_hash = $2, provider = $3, model = $4,
                credits_held = $5, hold_id = $6, job_id = $7
          where id = $1 and status = 'insufficient_credits'",
        &[
            &id,
            &q.content_hash,
            &q.provider,
            &q.model,
            &q.credits_held,
            &q.hold_id,
            &q.job_id,
        ],
    )
    .await
    .db_context("failed to mark analysis queued")?;
    Ok(())
}

//! GraphQL: analyses of a ticket, similar tickets, and `reanalyzeTicket`.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Ai;
use super::loaders::LatestAnalysisKey;
use super::repo::{self, AnalysisRow, AnalysisStatus};
use super::vectors::{self, Similar};
use crate::authz::Object as Obj;
use crate::error::{AppError, AppResult};
use crate::graphql::loader::{DeskLoader, LoadError};
use crate::graphql::{BigInt, handle, parse_id, session};
use crate::support::graphql::Ticket;
use crate::support::repo as support;
use crate::support::{TicketPriority, TicketStatus};

fn ai<'a>(ctx: &Context<'a>) -> AppResult<&'a Arc<Ai>> {
    handle::<Arc<Ai>>(ctx)
}

/// One AI analysis run of a ticket.
pub struct TicketAnalysis(pub AnalysisRow);

#[Object]
impl TicketAnalysis {
    async fn id(&self) -> ID {
        self.0.id.into()
    }
    async fn status(&self) -> AnalysisStatus {
        self.0.status
    }
    /// The priority the model proposes (applied to the ticket unless a person set its priority).
    async fn priority(&self) -> Option<TicketPriority> {
        self.0.priority.as_deref().and_then(|p| p.parse().ok())
    }
    /// billing, bug, account, feature_request, how_to or other.
    async fn category(&self) -> Option<&str> {
        self.0.category.as_deref()
    }
    /// Skills an agent needs for the ticket.
    async fn skills(&self) -> &[String] {
        &self.0.skills
    }
    /// negative, neutral or positive.
    async fn sentiment(&self) -> Option<&str> {
        self.0.sentiment.as_deref()
    }
    /// ISO 639-3 code of the ticket's language (`und` when unknown).
    async fn language(&self) -> Option<&str> {
        self.0.language.as_deref()
    }
    /// At most 280 characters.
    async fn summary(&self) -> Option<&str> {
        self.0.summary.as_deref()
    }
    async fn suggested_reply(&self) -> Option<&str> {
        self.0.suggested_reply.as_deref()
    }
    /// 0 to 1.
    async fn confidence(&self) -> Option<f64> {
        self.0.confidence.map(f64::from)
    }
    /// `builtin` (offline rules) or `openai` (an OpenAI-compatible endpoint).
    async fn provider(&self) -> &str {
        &self.0.provider
    }
    async fn model(&self) -> &str {
        &self.0.model
    }
    async fn prompt_version(&self) -> &str {
        &self.0.prompt_version
    }
    /// `created` (the ticket was filed) or `reanalyze`.
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    async fn prompt_tokens(&self) -> Option<i32> {
        self.0.prompt_tokens
    }
    async fn completion_tokens(&self) -> Option<i32> {
        self.0.completion_tokens
    }
    /// Credits held while the analysis is pending.
    async fn credits_held(&self) -> BigInt {
        self.0.credits_held.into()
    }
    /// Credits charged when it finished (0 unless DONE).
    async fn credits_charged(&self) -> BigInt {
        self.0.credits_charged.into()
    }
    /// Attempts so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    async fn duration_ms(&self) -> Option<i32> {
        self.0.duration_ms
    }
    /// Why the last attempt failed.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
}

/// Which search found a similar ticket.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimilaritySource {
    /// Nearest embeddings in Qdrant.
    Vector,
    /// PostgreSQL full-text search on the ticket's words: Qdrant is not configured, is down or slow,
    /// or holds no vector of the ticket yet.
    FullText,
}

/// A ticket like another one, with how alike they are (higher is closer).
#[derive(SimpleObject)]
pub struct SimilarTicket {
    pub score: f64,
    pub ticket: Ticket,
    /// Which search found it (scores of the two are not comparable).
    pub source: SimilaritySource,
}

impl SimilarTicket {
    fn new(s: Similar, source: SimilaritySource) -> Self {
        Self {
            score: s.score,
            ticket: Ticket(s.ticket),
            source,
        }
    }
}

/// Most similar tickets returned at once.
pub const SIMILAR_MAX: i32 = 20;

/// Similar tickets of `ticket_id` among `statuses`, from Qdrant when configured (falling back to
/// full-text search while the ticket has no vector, or when Qdrant fails or does not answer within
/// `DESKGRAPH_QDRANT_SEARCH_TIMEOUT_MS`), hydrated under the caller's RLS.
pub async fn similar_tickets(
    ctx: &Context<'_>,
    ticket_id: Uuid,
    limit: i32,
    statuses: &[TicketStatus],
) -> AppResult<Vec<SimilarTicket>> {
    let s = session(ctx)?;
    s.require(Obj::Ticket, "read")?;
    if !(1..=SIMILAR_MAX).contains(&limit) {
        return Err(AppError::invalid_field(
            "limit",
            format!("limit must be between 1 and {SIMILAR_MAX}"),
        ));
    }
    let org = s
        .context()
        .org_id
        .ok_or_else(|| AppError::Forbidden("no organization selected".to_owned()))?;
    let limit = usize::try_from(limit).unwrap_or(5);
    // Ask for a few more than needed: hydration may drop hits whose status changed meanwhile.
    let want = limit * 2 + 2;
    let mut hits = None;
    let ai = ai(ctx)?;
    if let Some(index) = &ai.index {
        // Bounded: Qdrant down or slow is no error, full-text search answers instead.
        let search = index.nearest(org, ticket_id, statuses, want as u64);
        match tokio::time::timeout(ai.search_timeout, search).await {
            Ok(Ok(found)) => hits = found,
            Ok(Err(err)) => {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "Qdrant search failed; using full-text search"
                );
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = ai.search_timeout.as_millis() as u64,
                    "Qdrant search timed out; using full-text search"
                );
            }
        }
    }
    let (hits, source) = match hits {
        Some(hits) => (hits, SimilaritySource::Vector),
        None => (
            vectors::fulltext_hits(&s.tx, ticket_id, statuses, want as i64).await?,
            SimilaritySource::FullText,
        ),
    };
    Ok(vectors::hydrate(&s.tx, &hits, statuses, limit)
        .await?
        .into_iter()
        .map(|similar| SimilarTicket::new(similar, source))
        .collect())
}

/// A ticket's latest analysis.
pub async fn latest(ctx: &Context<'_>, ticket_id: Uuid) -> AppResult<Option<TicketAnalysis>> {
    Ok(session(ctx)?
        .loader
        .load_one(LatestAnalysisKey(ticket_id))
        .await
        .map_err(AppError::from)?
        .flatten()
        .map(TicketAnalysis))
}

/// Loads the latest analyses of a page of tickets in one batch (before their `analysis` fields ask).
pub async fn prefetch_latest(
    loader: &DeskLoader,
    ticket_ids: impl Iterator<Item = Uuid>,
) -> Result<(), LoadError> {
    loader.load_many(ticket_ids.map(LatestAnalysisKey)).await?;
    Ok(())
}

/// A ticket's analyses, newest first.
pub async fn history(
    ctx: &Context<'_>,
    ticket_id: Uuid,
    first: i32,
) -> AppResult<Vec<TicketAnalysis>> {
    let s = session(ctx)?;
    if !(1..=100).contains(&first) {
        return Err(AppError::invalid_field(
            "first",
            "first must be between 1 and 100",
        ));
    }
    Ok(repo::history(&s.tx, ticket_id, i64::from(first))
        .await?
        .into_iter()
        .map(TicketAnalysis)
        .collect())
}

#[derive(Default)]
pub struct AiMutation;

#[Object]
impl AiMutation {
    /// Analyses a ticket again (credits are held now and charged when done). While an analysis of the
    /// ticket as it is now is queued or running, that one is returned instead of starting another.
    async fn reanalyze_ticket(&self, ctx: &Context<'_>, id: ID) -> AppResult<TicketAnalysis> {
        let s = session(ctx)?;
        s.require(Obj::Ticket, "reanalyze")?;
        let id = parse_id("id", &id)?;
        let ticket = support::ticket(&s.tx, id)
            .await?
            .ok_or(AppError::NotFound("ticket"))?;
        let row = super::request::request_analysis(&s.tx, ai(ctx)?, &ticket, "reanalyze").await?;
        Ok(TicketAnalysis(row))
    }
}

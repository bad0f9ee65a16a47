//! `analytics(from, to, timeZone, workspaceId)`: the figures a support lead watches, for owners,
//! admins and analyst keys (whose persisted `Dashboard` operation selects them all).

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::repo::{self, Group, Stats};
use super::{Interval, Window};
use crate::authz::Object as Obj;
use crate::error::AppResult;
use crate::graphql::input::parse_opt_id;
use crate::graphql::{BigInt, Session, session};
use crate::text_enum::text_enum;

/// What `ticketsBy` groups tickets by.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketDimension {
    /// Key: `OPEN`, `PENDING`, `RESOLVED`, `CLOSED`.
    Status,
    /// Key: `LOW`, `MEDIUM`, `HIGH`, `CRITICAL`.
    Priority,
    /// Key: the workspace id; label: its name.
    Workspace,
    /// Key: the assignee's user id, or `none`; label: their name.
    Assignee,
    /// Key: the category of the ticket's latest finished analysis (`billing`, `bug`, …), or `none`.
    Category,
    /// Key: the sentiment of the latest finished analysis (`negative`, `neutral`, `positive`), or
    /// `none`.
    Sentiment,
    /// Key: the ISO 639-3 language of the latest finished analysis (`eng`, `deu`, …; `und` when it
    /// could not tell), or `none`.
    Language,
}

// The names the breakdown query gives its grouping sets.
text_enum!(TicketDimension, "ticket dimension", {
    Status => "STATUS",
    Priority => "PRIORITY",
    Workspace => "WORKSPACE",
    Assignee => "ASSIGNEE",
    Category => "CATEGORY",
    Sentiment => "SENTIMENT",
    Language => "LANGUAGE",
});

/// One bucket of `ticketVolume`.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct TicketVolumePoint {
    /// The bucket's start (local midnight, Monday or 1st of the month in `timeZone`; clock hours).
    pub start: DateTime<Utc>,
    /// Tickets filed in the bucket (and in the window).
    pub created: i32,
    /// Tickets resolved in the bucket (and in the window).
    pub resolved: i32,
    /// Tickets filed before the bucket's end (or `to`, if earlier) and not resolved before it.
    pub open_at_end: i32,
}

/// Durations in seconds; the statistics are null when `count` is 0. Median and p90 are PostgreSQL's
/// `percentile_cont` (interpolated).
#[derive(SimpleObject, Debug, Clone, Copy, PartialEq)]
pub struct DurationStats {
    pub count: i32,
    pub mean_seconds: Option<f64>,
    pub median_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
}

/// One group of `ticketsBy`.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct TicketCount {
    pub key: String,
    /// A name for people: the workspace's or assignee's name, `Open`, `Feature request`, `English`, ….
    pub label: String,
    pub count: i32,
}

/// Analysis runs requested in the window.
#[derive(SimpleObject, Debug, Clone, Copy, PartialEq)]
pub struct AiUsage {
    pub analyses: i32,
    pub done: i32,
    pub failed: i32,
    /// Credits captured for these runs.
    pub credits_charged: BigInt,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
}

/// One bucket of `creditUsage`.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct CreditUsagePoint {
    pub start: DateTime<Utc>,
    /// Credits captured for AI work.
    pub charged: BigInt,
    /// Credits that came in: grants, purchases, allowances, refunds, positive adjustments.
    pub added: BigInt,
}

fn int(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Figures over the window `[from, to)`; ticket figures narrowed to `workspaceId` when given, credit
/// figures organization-wide.
pub struct Analytics {
    window: Window,
    workspace: Option<Uuid>,
    /// Every `ticketsBy` dimension comes from one grouping-sets query, run by the first that asks.
    breakdowns: OnceCell<Arc<Vec<Group>>>,
}

impl Analytics {
    fn session<'a>(ctx: &Context<'a>) -> AppResult<&'a Session> {
        let s = session(ctx)?;
        s.require(Obj::Analytics, "read")?;
        Ok(s)
    }
}

#[Object]
impl Analytics {
    /// Tickets filed, resolved and open, per `interval` in `timeZone` (buckets without tickets are
    /// present with zeros; at most 1,000 buckets).
    async fn ticket_volume(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(Interval::Day)")] interval: Option<Interval>,
    ) -> AppResult<Vec<TicketVolumePoint>> {
        let buckets = self.window.buckets(interval.unwrap_or_default())?;
        let s = Self::session(ctx)?;
        let (open_at_from, points) = repo::ticket_volume(
            &s.tx,
            &buckets,
            self.window.from,
            self.window.to,
            self.workspace,
        )
        .await?;
        let mut open = open_at_from;
        Ok(points
            .into_iter()
            .map(|p| {
                open += p.first - p.second;
                TicketVolumePoint {
                    start: p.start,
                    created: int(p.first),
                    resolved: int(p.second),
                    open_at_end: int(open),
                }
            })
            .collect())
    }

    /// Seconds from filing to resolution, over tickets resolved in the window.
    async fn resolution_time(&self, ctx: &Context<'_>) -> AppResult<DurationStats> {
        let s = Self::session(ctx)?;
        let stats =
            repo::resolution_time(&s.tx, self.window.from, self.window.to, self.workspace).await?;
        Ok(duration_stats(stats))
    }

    /// Seconds from filing to the first reply that is not an internal note and was written by a
    /// member (not an API key), over tickets filed in the window that have one.
    async fn first_response_time(&self, ctx: &Context<'_>) -> AppResult<DurationStats> {
        let s = Self::session(ctx)?;
        let stats =
            repo::first_response_time(&s.tx, self.window.from, self.window.to, self.workspace)
                .await?;
        Ok(duration_stats(stats))
    }

    /// Tickets filed in the window, grouped by `dimension`: most first, then by key.
    async fn tickets_by(
        &self,
        ctx: &Context<'_>,
        dimension: TicketDimension,
    ) -> AppResult<Vec<TicketCount>> {
        let s = Self::session(ctx)?;
        let groups = self
            .breakdowns
            .get_or_try_init(|| async {
                repo::breakdowns(&s.tx, self.window.from, self.window.to, self.workspace)
                    .await
                    .map(Arc::new)
            })
            .await?;
        let mut counts: Vec<TicketCount> = groups
            .iter()
            .filter(|g| g.dimension == dimension.as_str())
            .map(|g| count_of(dimension, g))
            .collect();
        counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        Ok(counts)
    }

    /// Analysis runs requested in the window (of tickets of the workspace, when given).
    async fn ai_usage(&self, ctx: &Context<'_>) -> AppResult<AiUsage> {
        let s = Self::session(ctx)?;
        let u = repo::ai_usage(&s.tx, self.window.from, self.window.to, self.workspace).await?;
        Ok(AiUsage {
            analyses: int(u.analyses),
            done: int(u.done),
            failed: int(u.failed),
            credits_charged: u.credits_charged.into(),
            prompt_tokens: int(u.prompt_tokens),
            completion_tokens: int(u.completion_tokens),
        })
    }

    /// Credits charged for AI work and credits added, per `interval` (organization-wide, whatever
    /// `workspaceId` says).
    async fn credit_usage(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(Interval::Day)")] interval: Option<Interval>,
    ) -> AppResult<Vec<CreditUsagePoint>> {
        let buckets = self.window.buckets(interval.unwrap_or_default())?;
        let s = Self::session(ctx)?;
        let points = repo::credit_usage(&s.tx, &buckets, self.window.from, self.window.to).await?;
        Ok(points
            .into_iter()
            .map(|p| CreditUsagePoint {
                start: p.start,
                charged: p.first.into(),
                added: p.second.into(),
            })
            .collect())
    }
}

fn duration_stats(s: Stats) -> DurationStats {
    DurationStats {
        count: int(s.count),
        mean_seconds: s.mean,
        median_seconds: s.median,
        p90_seconds: s.p90,
    }
}

/// `feature_request` → `Feature request`.
fn humanize(text: &str) -> String {
    let text = text.replace('_', " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

fn count_of(dimension: TicketDimension, group: &Group) -> TicketCount {
    let count = int(group.count);
    let Some(key) = group.key.clone() else {
        let label = match dimension {
            TicketDimension::Assignee => "Unassigned",
            _ => "No analysis",
        };
        return TicketCount {
            key: "none".into(),
            label: label.into(),
            count,
        };
    };
    let (key, label) = match dimension {
        TicketDimension::Status | TicketDimension::Priority => {
            (key.to_ascii_uppercase(), humanize(&key))
        }
        TicketDimension::Workspace | TicketDimension::Assignee => {
            let label = group.label.clone().unwrap_or_else(|| key.clone());
            (key, label)
        }
        TicketDimension::Language => {
            let label = whatlang::Lang::from_code(&key)
                .map(|l| l.eng_name().to_owned())
                .unwrap_or_else(|| match key.as_str() {
                    "und" => "Undetermined".to_owned(),
                    other => other.to_owned(),
                });
            (key, label)
        }
        TicketDimension::Category | TicketDimension::Sentiment => {
            let label = humanize(&key);
            (key, label)
        }
    };
    TicketCount { key, label, count }
}

#[derive(Default)]
pub struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// Support analytics over `[from, to)` (owners, admins and analyst keys; analyst keys through
    /// persisted operations such as `Dashboard`). Buckets start at `from` truncated to the interval
    /// in `timeZone` (an IANA name; local midnight, Monday or 1st, DST-correct). `workspaceId`
    /// narrows every ticket figure; credits are organization-wide. `to` must be after `from`.
    async fn analytics(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[graphql(default_with = "Some(String::from(\"UTC\"))")] time_zone: Option<String>,
        workspace_id: Option<ID>,
    ) -> AppResult<Analytics> {
        let s = Analytics::session(ctx)?;
        // Null (a persisted operation's omitted variable) means the default too.
        let window = Window::new(from, to, time_zone.as_deref().unwrap_or("UTC"))?;
        let workspace = parse_opt_id("workspaceId", workspace_id.as_ref())?;
        // Every series asked for must fit before anything is read: a refusal returns no figures.
        for field in ctx.field().selection_set() {
            if matches!(field.name(), "ticketVolume" | "creditUsage") {
                let interval = field
                    .arguments()
                    // Arguments that do not resolve were refused by validation already.
                    .unwrap_or_default()
                    .into_iter()
                    .find(|(name, _)| name.as_str() == "interval")
                    .map(|(_, value)| value);
                let interval = <Option<Interval> as async_graphql::InputType>::parse(interval)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                window.buckets(interval)?;
            }
        }
        repo::allow_memory(&s.tx).await?;
        Ok(Analytics {
            window,
            workspace,
            breakdowns: OnceCell::new(),
        })
    }
}

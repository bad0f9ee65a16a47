//! AI triage: every ticket is analysed in the background (priority, category, skills, sentiment,
//! language, summary, suggested reply), paid for with a credit hold placed when the ticket is created,
//! and embedded so that agents see similar tickets already resolved.
//!
//! - [`request`]: the request side, in the caller's transaction: hold the price, queue the job,
//!   record a pending analysis (what `createTicket` and `reanalyzeTicket` set off);
//! - [`handlers`]: the job handlers that run analyses, resume those waiting for credits and keep
//!   vector payloads in step;
//! - [`provider`]: the facade over the providers, [`builtin`] (offline rules) and [`openai`] (any
//!   OpenAI-compatible endpoint);
//! - [`config`]: the settings; [`price`]: what a run costs in credits;
//! - [`vectors`]: similar tickets (Qdrant, or PostgreSQL full-text search), always hydrated under RLS;
//! - [`repo`], [`loaders`] and [`graphql`]: analyses in the database and in the API.
//!
//! This file holds the vocabulary they share: what an analysis says.

pub mod builtin;
pub mod config;
pub mod graphql;
pub mod handlers;
pub mod loaders;
pub mod openai;
pub mod price;
pub mod provider;
pub mod reindex;
pub mod repo;
pub mod request;
pub mod vectors;

pub use config::AiConfig;
pub use price::{Price, Prices};
pub use provider::{Ai, Analyzer, Embeddings, ProviderError};

use async_graphql::Enum;
use serde::{Deserialize, Serialize};

use crate::support::TicketPriority;
use crate::text_enum::text_enum;

/// Bumped whenever the prompt or the built-in rules change; stored with every analysis.
pub const PROMPT_VERSION: &str = "triage-v2";

/// Longest summary, in characters.
pub const SUMMARY_MAX: usize = 280;

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sentiment {
    Negative,
    Neutral,
    Positive,
}

text_enum!(Sentiment, "sentiment", {
    Negative => "negative",
    Neutral => "neutral",
    Positive => "positive",
});

/// What a ticket is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Billing,
    Bug,
    Account,
    FeatureRequest,
    HowTo,
    Other,
}

text_enum!(Category, "category", {
    Billing => "billing",
    Bug => "bug",
    Account => "account",
    FeatureRequest => "feature_request",
    HowTo => "how_to",
    Other => "other",
});

impl Category {
    /// The skill an agent needs for the category.
    pub fn skill(self) -> &'static str {
        match self {
            Category::Billing => "billing",
            Category::Bug => "troubleshooting",
            Category::Account => "account_access",
            Category::FeatureRequest => "product",
            Category::HowTo => "product",
            Category::Other => "general",
        }
    }
}

/// The result of analysing one ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub priority: TicketPriority,
    pub category: Category,
    pub skills: Vec<String>,
    pub sentiment: Sentiment,
    pub language: String,
    pub summary: String,
    pub suggested_reply: String,
    pub confidence: f64,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
}

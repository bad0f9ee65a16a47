//! AI triage: every ticket is analysed in the background (priority, category, skills, sentiment,
//! language, summary, suggested reply), paid for with a credit hold placed when the ticket is created,
//! and embedded so that agents see similar tickets already resolved.
//!
//! - [`pipeline`]: requesting an analysis (hold + job, in the caller's transaction) and the job
//!   handlers that run it;
//! - [`builtin`] and [`openai`]: the providers (offline rules, or any OpenAI-compatible endpoint);
//! - [`vectors`]: similar tickets (Qdrant, or PostgreSQL full-text search), always hydrated under RLS;
//! - [`repo`] and [`graphql`]: analyses in the database and in the API.

pub mod builtin;
pub mod graphql;
pub mod openai;
pub mod pipeline;
pub mod repo;
pub mod vectors;

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use async_graphql::Enum;
use serde::{Deserialize, Serialize};

use crate::support::TicketPriority;

/// Bumped whenever the prompt or the built-in rules change; stored with every analysis.
pub const PROMPT_VERSION: &str = "triage-v1";

/// Longest summary, in characters.
pub const SUMMARY_MAX: usize = 280;

/// Settings of the AI pipeline (read by `serve`, `worker` and `demo`).
#[derive(Debug, Clone, clap::Args)]
pub struct AiConfig {
    /// Key of an OpenAI-compatible API. When empty, the built-in offline analyzer and embedder are used.
    #[arg(
        long,
        env = "OPENAI_API_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub openai_api_key: String,

    /// Base URL of the OpenAI-compatible API (OpenAI, Azure-style gateways, LiteLLM, vLLM, Ollama's
    /// `http://localhost:11434/v1`, …).
    #[arg(
        long,
        env = "OPENAI_BASE_URL",
        default_value = "https://api.openai.com/v1"
    )]
    pub openai_base_url: String,

    /// Chat model used for analyses (it must support structured outputs / JSON schema).
    #[arg(long, env = "DESKGRAPH_LLM_MODEL", default_value = "gpt-4o-mini")]
    pub llm_model: String,

    /// Embedding model used for similar tickets.
    #[arg(
        long,
        env = "DESKGRAPH_EMBEDDING_MODEL",
        default_value = "text-embedding-3-small"
    )]
    pub embedding_model: String,

    /// Seconds one request to the model may take.
    #[arg(long, env = "DESKGRAPH_LLM_TIMEOUT_SECS", default_value_t = 60)]
    pub llm_timeout_secs: u64,

    /// Retries of one model request after a 429, a 5xx or a timeout (honouring `Retry-After`), before
    /// the job itself is retried later with backoff.
    #[arg(long, env = "DESKGRAPH_LLM_MAX_RETRIES", default_value_t = 2)]
    pub llm_max_retries: u32,

    /// Longest `Retry-After` honoured, in seconds (a longer one fails the attempt; the job retries later).
    #[arg(long, env = "DESKGRAPH_LLM_MAX_RETRY_AFTER_SECS", default_value_t = 30)]
    pub llm_max_retry_after_secs: u64,

    /// Credits per analysis, per model: `model=credits` (a flat price) or `model=credits:tokens` (at
    /// most `credits`, charged one credit per `tokens` tokens used, rounded up). `builtin` is the
    /// offline analyzer; `*` any other model. The full price is held when the analysis is requested.
    #[arg(
        long,
        env = "DESKGRAPH_AI_PRICES",
        default_value = "builtin=1,*=5:1000"
    )]
    pub prices: String,

    /// Qdrant's gRPC URL (e.g. `http://localhost:6334`). When empty, similar tickets come from
    /// PostgreSQL full-text search.
    #[arg(long, env = "QDRANT_URL", default_value = "")]
    pub qdrant_url: String,

    /// Qdrant API key (when the server requires one).
    #[arg(
        long,
        env = "QDRANT_API_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub qdrant_api_key: String,

    /// Qdrant collection holding ticket vectors (created at start-up when missing).
    #[arg(
        long,
        env = "DESKGRAPH_QDRANT_COLLECTION",
        default_value = "deskgraph_tickets"
    )]
    pub qdrant_collection: String,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            openai_api_key: String::new(),
            openai_base_url: "https://api.openai.com/v1".to_owned(),
            llm_model: "gpt-4o-mini".to_owned(),
            embedding_model: "text-embedding-3-small".to_owned(),
            llm_timeout_secs: 60,
            llm_max_retries: 2,
            llm_max_retry_after_secs: 30,
            prices: "builtin=1,*=5:1000".to_owned(),
            qdrant_url: String::new(),
            qdrant_api_key: String::new(),
            qdrant_collection: "deskgraph_tickets".to_owned(),
        }
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sentiment {
    Negative,
    Neutral,
    Positive,
}

impl Sentiment {
    pub fn as_str(self) -> &'static str {
        match self {
            Sentiment::Negative => "negative",
            Sentiment::Neutral => "neutral",
            Sentiment::Positive => "positive",
        }
    }
}

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

impl Category {
    pub const ALL: [&'static str; 6] = [
        "billing",
        "bug",
        "account",
        "feature_request",
        "how_to",
        "other",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Billing => "billing",
            Category::Bug => "bug",
            Category::Account => "account",
            Category::FeatureRequest => "feature_request",
            Category::HowTo => "how_to",
            Category::Other => "other",
        }
    }

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

/// Why a provider call failed, and whether trying again later may help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// Rate limits, 5xx, timeouts, connection failures, output that does not fit the schema.
    #[error("{0}")]
    Transient(String),
    /// Bad key, unknown model, a request the provider refuses: the same request fails again.
    #[error("{0}")]
    Permanent(String),
}

/// Credits an analysis by `model` costs: held in full when requested, charged by use when done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub credits: i64,
    /// One credit per this many tokens (at most `credits`); flat `credits` when `None`.
    pub tokens_per_credit: Option<u64>,
}

impl Price {
    /// What to charge for a run that used `tokens` (unknown for the built-in analyzer).
    pub fn charge(self, tokens: Option<u64>) -> i64 {
        match (self.tokens_per_credit, tokens) {
            (Some(per), Some(tokens)) if per > 0 => {
                let used = i64::try_from(tokens.div_ceil(per)).unwrap_or(i64::MAX);
                used.clamp(1, self.credits)
            }
            _ => self.credits,
        }
    }
}

/// Prices per model, parsed from `DESKGRAPH_AI_PRICES`.
#[derive(Debug, Clone)]
pub struct Prices {
    by_model: HashMap<String, Price>,
    fallback: Price,
}

impl Prices {
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut by_model = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (model, price) = entry
                .split_once('=')
                .with_context(|| format!("DESKGRAPH_AI_PRICES: `{entry}` is not model=credits"))?;
            let (credits, per) = match price.split_once(':') {
                Some((c, t)) => (c, Some(t)),
                None => (price, None),
            };
            let credits: i64 = credits
                .trim()
                .parse()
                .ok()
                .filter(|c| *c > 0)
                .with_context(|| {
                    format!(
                        "DESKGRAPH_AI_PRICES: the credits of `{entry}` must be a positive integer"
                    )
                })?;
            let tokens_per_credit = per
                .map(|t| t.trim().parse::<u64>().ok().filter(|t| *t > 0))
                .map(|t| {
                    t.with_context(|| {
                        format!("DESKGRAPH_AI_PRICES: the tokens of `{entry}` must be a positive integer")
                    })
                })
                .transpose()?;
            by_model.insert(
                model.trim().to_owned(),
                Price {
                    credits,
                    tokens_per_credit,
                },
            );
        }
        let fallback = by_model.get("*").copied().unwrap_or(Price {
            credits: 5,
            tokens_per_credit: Some(1000),
        });
        Ok(Self { by_model, fallback })
    }

    pub fn of(&self, model: &str) -> Price {
        self.by_model.get(model).copied().unwrap_or(self.fallback)
    }
}

/// The analyzer in use.
pub enum Analyzer {
    Builtin,
    OpenAi(Box<openai::OpenAi>),
}

/// The configured pipeline, shared by the API (to request analyses and find similar tickets) and the
/// workers (to run them).
pub struct Ai {
    pub analyzer: Analyzer,
    pub prices: Prices,
    /// Qdrant, when `QDRANT_URL` is set.
    pub index: Option<vectors::QdrantIndex>,
    /// Attempts an analysis job gets (`DESKGRAPH_JOB_MAX_ATTEMPTS`).
    pub job_max_attempts: i32,
}

impl Ai {
    /// Builds the pipeline from its settings. With Qdrant configured, makes sure its collection and
    /// payload indexes exist (the dimension comes from the embedder).
    pub async fn from_config(cfg: &AiConfig, job_max_attempts: i32) -> anyhow::Result<Arc<Self>> {
        let prices = Prices::parse(&cfg.prices)?;
        let analyzer = if cfg.openai_api_key.is_empty() {
            Analyzer::Builtin
        } else {
            Analyzer::OpenAi(Box::new(openai::OpenAi::new(cfg)?))
        };
        let mut ai = Self {
            analyzer,
            prices,
            index: None,
            job_max_attempts: job_max_attempts.clamp(1, 100),
        };
        if !cfg.qdrant_url.is_empty() {
            let dimensions = ai
                .embed(&["dimension probe".to_owned()])
                .await
                .context("the embedder did not answer (needed for the Qdrant collection's size)")?
                .vectors
                .first()
                .map(Vec::len)
                .context("the embedder returned no vector")?;
            let index = vectors::QdrantIndex::connect(cfg).await?;
            index.ensure_collection(dimensions).await?;
            ai.index = Some(index);
        }
        tracing::info!(
            provider = ai.provider(),
            model = ai.model(),
            vectors = if ai.index.is_some() {
                "qdrant"
            } else {
                "postgres full-text"
            },
            "AI pipeline ready"
        );
        Ok(Arc::new(ai))
    }

    /// The built-in provider with PostgreSQL similarity (tests and tools).
    pub fn builtin() -> Arc<Self> {
        Arc::new(Self {
            analyzer: Analyzer::Builtin,
            prices: Prices {
                by_model: HashMap::new(),
                fallback: Price {
                    credits: 1,
                    tokens_per_credit: None,
                },
            },
            index: None,
            job_max_attempts: crate::jobs::DEFAULT_MAX_ATTEMPTS,
        })
    }

    pub fn provider(&self) -> &'static str {
        match self.analyzer {
            Analyzer::Builtin => "builtin",
            Analyzer::OpenAi(_) => "openai",
        }
    }

    pub fn model(&self) -> &str {
        match &self.analyzer {
            Analyzer::Builtin => "builtin",
            Analyzer::OpenAi(o) => o.model(),
        }
    }

    pub fn embedding_model(&self) -> &str {
        match &self.analyzer {
            Analyzer::Builtin => "builtin-hash-256",
            Analyzer::OpenAi(o) => o.embedding_model(),
        }
    }

    pub fn price(&self) -> Price {
        self.prices.of(self.model())
    }

    pub async fn analyze(&self, title: &str, description: &str) -> Result<Analysis, ProviderError> {
        match &self.analyzer {
            Analyzer::Builtin => Ok(builtin::analyze(title, description)),
            Analyzer::OpenAi(o) => o.analyze(title, description).await,
        }
    }

    pub async fn embed(&self, texts: &[String]) -> Result<Embeddings, ProviderError> {
        match &self.analyzer {
            Analyzer::Builtin => Ok(Embeddings {
                vectors: texts.iter().map(|t| builtin::embed(t)).collect(),
                tokens: None,
            }),
            Analyzer::OpenAi(o) => o.embed(texts).await,
        }
    }
}

/// Vectors for a batch of texts, in order.
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    pub tokens: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_flat_and_per_token_and_fall_back() {
        let p = Prices::parse("builtin=1, gpt-4o=10:500 ,*=3").expect("valid");
        assert_eq!(p.of("builtin").charge(None), 1);
        assert_eq!(p.of("gpt-4o").charge(Some(501)), 2);
        assert_eq!(
            p.of("gpt-4o").charge(Some(100_000)),
            10,
            "capped at the hold"
        );
        assert_eq!(p.of("gpt-4o").charge(Some(0)), 1, "at least one credit");
        assert_eq!(p.of("other").charge(Some(1)), 3);
        for bad in ["builtin", "x=0", "x=-1", "x=1:0", "x=a"] {
            assert!(Prices::parse(bad).is_err(), "{bad}");
        }
    }
}

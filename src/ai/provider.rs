//! The provider facade: one [`Ai`] value that analyses and embeds through the configured provider
//! (the built-in offline rules, or an OpenAI-compatible endpoint) and holds the vector index.

use std::sync::Arc;

use anyhow::Context as _;

use super::config::AiConfig;
use super::price::{Price, Prices};
use super::{Analysis, builtin, openai, vectors};

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
    /// How long a similar-tickets search waits for Qdrant (`DESKGRAPH_QDRANT_SEARCH_TIMEOUT_MS`).
    pub search_timeout: std::time::Duration,
    /// Attempts an analysis job gets (`DESKGRAPH_JOB_MAX_ATTEMPTS`).
    pub job_max_attempts: i32,
}

impl Ai {
    /// Builds the pipeline from its settings. With Qdrant configured, makes sure the collection of
    /// the embedding model and dimension (`{DESKGRAPH_QDRANT_COLLECTION}__{model}__{dimension}`; the
    /// dimension comes from the embedder) and its payload indexes exist.
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
            search_timeout: std::time::Duration::from_millis(cfg.qdrant_search_timeout_ms),
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
            // One collection per embedding model and dimension: vectors of another model are
            // never compared with these (`deskgraph reindex` fills a new collection).
            let index =
                vectors::QdrantIndex::connect(cfg, ai.embedding_model(), dimensions).await?;
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
            prices: Prices::flat(1),
            index: None,
            search_timeout: std::time::Duration::from_millis(
                AiConfig::default().qdrant_search_timeout_ms,
            ),
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

//! Settings of the AI pipeline: the provider, its models and limits, prices, and Qdrant.

use crate::secret::Secret;

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
    pub openai_api_key: Secret,

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
    pub qdrant_api_key: Secret,

    /// Prefix of the Qdrant collection holding ticket vectors: the collection is
    /// `{prefix}__{embedding model}__{dimension}` (the model lowercased, other characters than ASCII
    /// letters and digits as `_`), created at start-up when missing, so vectors of another model or
    /// dimension are never compared. After changing the model, fill it with `deskgraph reindex`.
    #[arg(
        long,
        env = "DESKGRAPH_QDRANT_COLLECTION",
        default_value = "deskgraph_tickets"
    )]
    pub qdrant_collection: String,

    /// Milliseconds a similar-tickets search may wait for Qdrant; past it (or when Qdrant is down) the
    /// answer comes from PostgreSQL full-text search instead.
    #[arg(
        long,
        env = "DESKGRAPH_QDRANT_SEARCH_TIMEOUT_MS",
        default_value_t = 500
    )]
    pub qdrant_search_timeout_ms: u64,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            openai_api_key: Secret::default(),
            openai_base_url: "https://api.openai.com/v1".to_owned(),
            llm_model: "gpt-4o-mini".to_owned(),
            embedding_model: "text-embedding-3-small".to_owned(),
            llm_timeout_secs: 60,
            llm_max_retries: 2,
            llm_max_retry_after_secs: 30,
            prices: "builtin=1,*=5:1000".to_owned(),
            qdrant_url: String::new(),
            qdrant_api_key: Secret::default(),
            qdrant_collection: "deskgraph_tickets".to_owned(),
            qdrant_search_timeout_ms: 500,
        }
    }
}

//! Analyses and embeddings through any OpenAI-compatible endpoint, with async-openai.
//!
//! async-openai's own retry layer retries 429/5xx but keeps no `Retry-After` cap and hides the header,
//! so the HTTP service here is a plain reqwest call that turns every non-2xx reply into
//! [`HttpStatus`] (status, `Retry-After`, body), and [`OpenAi::call`] does the retrying: 429, 5xx,
//! timeouts and connection failures are tried again (honouring `Retry-After` up to a cap, else
//! exponential backoff), and output that does not fit the schema counts as a transient failure, so
//! the job is retried later and finally fails with a clear error.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use async_openai::types::chat::{
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    CreateChatCompletionRequestArgs, ResponseFormat, ResponseFormatJsonSchema,
};
use async_openai::types::embeddings::CreateEmbeddingRequestArgs;
use serde::Deserialize;
use serde_json::json;

use super::{
    AiConfig, Analysis, Category, Embeddings, ProviderError, SUMMARY_MAX, Sentiment, builtin,
};
use crate::support::TicketPriority;

/// A non-2xx reply, with what retrying needs.
#[derive(Debug)]
struct HttpStatus {
    status: reqwest::StatusCode,
    retry_after: Option<Duration>,
    body: String,
}

impl std::fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}: {}", self.status, self.body)
    }
}

impl std::error::Error for HttpStatus {}

pub struct OpenAi {
    client: Client<OpenAIConfig>,
    model: String,
    embedding_model: String,
    max_retries: u32,
    max_retry_after: Duration,
}

const SYSTEM_PROMPT: &str = "You triage customer support tickets for a help desk. Read the ticket and \
answer with JSON only, following the schema. priority: how urgent the ticket is for the support team \
(critical = outage, security or data loss; high = a customer is blocked or was charged wrongly; low = \
questions and suggestions). category: what the ticket is about. skills: 1 to 5 short lowercase skills an \
agent needs (e.g. billing, api, mobile). sentiment: the customer's tone. language: the ISO 639-3 code of \
the ticket's language (eng, deu, fra, spa, …). summary: one or two sentences, at most 280 characters, in \
English. suggested_reply: a short, polite first reply to the customer, in the ticket's language, with no \
promises you cannot keep. confidence: 0 to 1, how sure you are of priority and category.";

fn output_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "priority": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
            "category": {"type": "string", "enum": Category::ALL.map(Category::as_str)},
            "skills": {"type": "array", "items": {"type": "string"}},
            "sentiment": {"type": "string", "enum": ["negative", "neutral", "positive"]},
            "language": {"type": "string"},
            "summary": {"type": "string"},
            "suggested_reply": {"type": "string"},
            "confidence": {"type": "number"}
        },
        "required": ["priority", "category", "skills", "sentiment", "language", "summary",
                     "suggested_reply", "confidence"],
        "additionalProperties": false
    })
}

/// The model's answer, as the schema defines it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Output {
    priority: TicketPriority,
    category: Category,
    skills: Vec<String>,
    sentiment: Sentiment,
    language: String,
    summary: String,
    suggested_reply: String,
    confidence: f64,
}

/// Longest ticket text sent to the model, in characters (descriptions may hold 20,000).
const MAX_INPUT_CHARS: usize = 8_000;

impl OpenAi {
    pub fn new(cfg: &AiConfig) -> anyhow::Result<Self> {
        crate::crypto::install();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.llm_timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("failed to build the HTTP client for the model provider")?;
        let service = tower::service_fn(move |request: HttpRequestFactory| {
            let http = http.clone();
            async move {
                let response = http
                    .execute(request.build().await?)
                    .await
                    .map_err(OpenAIError::Reqwest)?;
                let status = response.status();
                if status.is_success() {
                    return Ok(response);
                }
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    // A huge value is kept (and refused as longer than allowed), never a panic.
                    .and_then(|s| Duration::try_from_secs_f64(s).ok());
                let body: String = response.text().await.unwrap_or_default();
                Err(OpenAIError::Boxed(Box::new(HttpStatus {
                    status,
                    retry_after,
                    body: builtin::clip(&body, 500),
                })))
            }
        });
        let config = OpenAIConfig::new()
            .with_api_base(cfg.openai_base_url.trim_end_matches('/'))
            .with_api_key(cfg.openai_api_key.expose());
        Ok(Self {
            client: Client::with_config(config).with_http_service(service),
            model: cfg.llm_model.clone(),
            embedding_model: cfg.embedding_model.clone(),
            max_retries: cfg.llm_max_retries,
            max_retry_after: Duration::from_secs(cfg.llm_max_retry_after_secs),
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn embedding_model(&self) -> &str {
        &self.embedding_model
    }

    /// Runs `request`, retrying transient failures up to `max_retries` times.
    async fn call<T, F, Fut>(&self, what: &str, request: F) -> Result<T, ProviderError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, OpenAIError>>,
    {
        let mut tries = 0u32;
        loop {
            let err = match request().await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let (error, wait) = classify(what, err);
            let ProviderError::Transient(message) = &error else {
                return Err(error);
            };
            if tries >= self.max_retries {
                return Err(error);
            }
            let delay = match wait {
                Some(after) if after > self.max_retry_after => {
                    return Err(ProviderError::Transient(format!(
                        "{message} (Retry-After {} s is longer than the {} s allowed)",
                        after.as_secs(),
                        self.max_retry_after.as_secs()
                    )));
                }
                Some(after) => after,
                None => Duration::from_millis(250 * 2u64.pow(tries.min(6))),
            };
            tracing::warn!(what, error = %message, retry_in_ms = delay.as_millis(), "model request failed; retrying");
            tokio::time::sleep(delay).await;
            tries += 1;
        }
    }

    pub async fn analyze(&self, title: &str, description: &str) -> Result<Analysis, ProviderError> {
        let ticket = builtin::clip(
            &format!("Title: {title}\n\nDescription:\n{description}"),
            MAX_INPUT_CHARS,
        );
        let request = CreateChatCompletionRequestArgs::default()
            .model(&self.model)
            .messages(vec![
                ChatCompletionRequestSystemMessage::from(SYSTEM_PROMPT).into(),
                ChatCompletionRequestUserMessage::from(ticket).into(),
            ])
            .response_format(ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    name: "ticket_triage".into(),
                    description: None,
                    strict: Some(true),
                    schema: output_schema(),
                },
            })
            .temperature(0.0)
            .build()
            .map_err(|e| ProviderError::Permanent(format!("invalid request: {e}")))?;
        let chat = self.client.chat();
        let (output, usage) = self
            .call("analysis", || async {
                let response = chat.create(request.clone()).await?;
                let content = response
                    .choices
                    .first()
                    .and_then(|c| c.message.content.clone())
                    .unwrap_or_default();
                Ok((content, response.usage))
            })
            .await?;
        let parsed: Output = serde_json::from_str(&output).map_err(|e| {
            ProviderError::Transient(format!(
                "the model's output does not fit the schema ({e}): {}",
                builtin::clip(&output, 200)
            ))
        })?;
        if !(0.0..=1.0).contains(&parsed.confidence) {
            return Err(ProviderError::Transient(format!(
                "the model's confidence {} is not between 0 and 1",
                parsed.confidence
            )));
        }
        let mut skills: Vec<String> = parsed
            .skills
            .iter()
            .map(|s| builtin::clip(s.trim(), 50).to_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        skills.dedup();
        skills.truncate(10);
        Ok(Analysis {
            priority: parsed.priority,
            category: parsed.category,
            skills,
            sentiment: parsed.sentiment,
            language: builtin::clip(parsed.language.trim(), 16).to_lowercase(),
            // Models count characters badly: a long summary is cut, not rejected.
            summary: builtin::clip(parsed.summary.trim(), SUMMARY_MAX),
            suggested_reply: builtin::clip(parsed.suggested_reply.trim(), 5_000),
            confidence: parsed.confidence,
            prompt_tokens: usage.as_ref().map(|u| u.prompt_tokens),
            completion_tokens: usage.as_ref().map(|u| u.completion_tokens),
        })
    }

    pub async fn embed(&self, texts: &[String]) -> Result<Embeddings, ProviderError> {
        let input: Vec<String> = texts
            .iter()
            .map(|t| builtin::clip(t, MAX_INPUT_CHARS))
            .collect();
        let request = CreateEmbeddingRequestArgs::default()
            .model(&self.embedding_model)
            .input(input)
            .build()
            .map_err(|e| ProviderError::Permanent(format!("invalid request: {e}")))?;
        let embeddings = self.client.embeddings();
        let response = self
            .call("embedding", || embeddings.create(request.clone()))
            .await?;
        let mut data = response.data;
        data.sort_by_key(|e| e.index);
        if data.len() != texts.len() {
            return Err(ProviderError::Transient(format!(
                "asked for {} embeddings, got {}",
                texts.len(),
                data.len()
            )));
        }
        Ok(Embeddings {
            vectors: data.into_iter().map(|e| e.embedding).collect(),
            tokens: Some(response.usage.total_tokens),
        })
    }
}

/// Sorts a failed request into transient or permanent, with the wait the server asked for.
fn classify(what: &str, err: OpenAIError) -> (ProviderError, Option<Duration>) {
    match err {
        OpenAIError::Boxed(boxed) => match boxed.downcast::<HttpStatus>() {
            Ok(http) => {
                let message = format!("{what} request failed with {http}");
                let code = http.status.as_u16();
                if code == 429 || code == 408 || http.status.is_server_error() {
                    (ProviderError::Transient(message), http.retry_after)
                } else {
                    (ProviderError::Permanent(message), None)
                }
            }
            Err(other) => (
                ProviderError::Transient(format!("{what} request failed: {other}")),
                None,
            ),
        },
        OpenAIError::Reqwest(e) if e.is_timeout() => (
            ProviderError::Transient(format!("{what} request timed out")),
            None,
        ),
        OpenAIError::Reqwest(e) => (
            ProviderError::Transient(format!("{what} request failed: {e}")),
            None,
        ),
        OpenAIError::JSONDeserialize(e, body) => (
            ProviderError::Transient(format!(
                "{what} response is not valid JSON ({e}): {}",
                builtin::clip(&body, 200)
            )),
            None,
        ),
        OpenAIError::ApiError(e) => {
            let message = format!("{what} request failed: {e}");
            if e.status_code.as_u16() == 429 || e.status_code.is_server_error() {
                (ProviderError::Transient(message), None)
            } else {
                (ProviderError::Permanent(message), None)
            }
        }
        other => (
            ProviderError::Permanent(format!("{what} request failed: {other}")),
            None,
        ),
    }
}

//! An in-process fake of an OpenAI-compatible API: real HTTP on a local port, replies from a script
//! (then a default), every request recorded. Drives the async-openai provider end to end.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One scripted reply of `/v1/chat/completions`.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with this message content (the model's JSON answer).
    Content(String),
    /// This status with an OpenAI-style error body, and `Retry-After` when given.
    Status(u16, Option<&'static str>),
    /// 200 whose body is not JSON at all.
    Garbage,
    /// Waits this long before answering with the default content (to trip client timeouts).
    Hang(Duration),
}

/// A valid answer for the triage schema.
pub fn triage_json(priority: &str) -> String {
    json!({
        "priority": priority,
        "category": "billing",
        "skills": ["billing", "refunds"],
        "sentiment": "negative",
        "language": "eng",
        "summary": "Customer was charged twice and wants a refund.",
        "suggested_reply": "Sorry about the double charge — I have refunded it.",
        "confidence": 0.87
    })
    .to_string()
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    requests: Vec<Value>,
    embedding_requests: Vec<Value>,
    authorization: Vec<String>,
    default: Option<Reply>,
}

#[derive(Clone, Default)]
pub struct FakeOpenAi {
    inner: Arc<Mutex<Inner>>,
    pub url: String,
}

impl FakeOpenAi {
    pub async fn start() -> Self {
        let mut fake = FakeOpenAi::default();
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/embeddings", post(embeddings))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        fake.url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    /// Replies to give, in order, before the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().unwrap().script.extend(replies);
    }

    /// The reply once the script is used up (a valid `high` answer unless set).
    pub fn default_reply(&self, reply: Reply) {
        self.inner.lock().unwrap().default = Some(reply);
    }

    /// Chat requests received so far (their JSON bodies).
    pub fn chat_requests(&self) -> Vec<Value> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Embeddings requests received so far (their JSON bodies).
    pub fn embedding_requests(&self) -> Vec<Value> {
        self.inner.lock().unwrap().embedding_requests.clone()
    }

    pub fn authorization(&self) -> Vec<String> {
        self.inner.lock().unwrap().authorization.clone()
    }
}

async fn chat(State(fake): State<FakeOpenAi>, headers: HeaderMap, body: String) -> Response {
    let reply = {
        let mut inner = fake.inner.lock().unwrap();
        inner
            .requests
            .push(serde_json::from_str(&body).unwrap_or(Value::Null));
        if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
            inner.authorization.push(auth.to_owned());
        }
        inner.script.pop_front().or_else(|| inner.default.clone())
    };
    let reply = reply.unwrap_or_else(|| Reply::Content(triage_json("high")));
    match reply {
        Reply::Content(content) => completion(&content),
        Reply::Status(code, retry_after) => {
            let mut response = (
                StatusCode::from_u16(code).unwrap(),
                [("content-type", "application/json")],
                json!({"error": {"message": format!("fake error {code}"), "type": "server_error", "param": null, "code": null}}).to_string(),
            )
                .into_response();
            if let Some(after) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", after.parse().unwrap());
            }
            response
        }
        Reply::Garbage => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "<html>upstream proxy error</html>",
        )
            .into_response(),
        Reply::Hang(wait) => {
            tokio::time::sleep(wait).await;
            completion(&triage_json("high"))
        }
    }
}

fn completion(content: &str) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000u32,
            "model": "fake-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200}
        })
        .to_string(),
    )
        .into_response()
}

async fn embeddings(State(fake): State<FakeOpenAi>, body: String) -> Response {
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.inner
        .lock()
        .unwrap()
        .embedding_requests
        .push(request.clone());
    let inputs: Vec<String> = match &request["input"] {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => vec![],
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| json!({"index": i, "object": "embedding", "embedding": deskgraph::ai::builtin::embed(text)}))
        .collect();
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({"object": "list", "model": "fake-embedding", "data": data,
               "usage": {"prompt_tokens": 10, "total_tokens": 10}})
        .to_string(),
    )
        .into_response()
}

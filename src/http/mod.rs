//! HTTP: `/graphql` (POST, GET with GraphiQL, websocket upgrades for subscriptions in [`ws`]; media
//! types and statuses as GraphQL over HTTP says, in [`protocol`]), `/healthz`, `/readyz`; the pages
//! a browser gets and their embedded assets, in [`graphiql`] (`/`, GraphiQL, `/schema.graphql`,
//! `/assets/…`); request ids, structured request logs, security headers, CORS, body limits and
//! graceful shutdown.

mod graphiql;
mod protocol;
mod ws;

pub use graphiql::{GraphiqlSettings, GraphiqlUser};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use sha2::{Digest as _, Sha256};
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::ServerConfig;
use crate::db;
use crate::error::AppError;
use crate::identity::auth::{JwtVerifier, credentials_from_headers};
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::schema::executor::{Engine, Outcome};
use protocol::{MediaType, NotAGraphQLRequest};

/// Shared state of the HTTP handlers.
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Live subscriptions of this instance.
    pub hub: Arc<Hub>,
    /// Where the hub's `LISTEN` connection goes (`DATABASE_LISTEN_URL`).
    pub listen: db::tls::Target,
    pub metrics: Metrics,
    pub verifier: JwtVerifier,
    pub max_body_bytes: usize,
    /// `max-age` of analyst keys' persisted GETs (`DESKGRAPH_ANALYST_CACHE_MAX_AGE_SECS`); 0: not
    /// cached.
    pub analyst_cache_max_age_secs: u64,
    /// What the GraphiQL page opens with: signed in as nobody, unless `deskgraph demo` set its users.
    pub graphiql: GraphiqlSettings,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// API responses are data, never documents: nothing may load, run or frame.
const API_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub fn router(state: Arc<AppState>, cfg: &ServerConfig) -> Router {
    let max_body = state.max_body_bytes;
    // One access-log line per request (status, latency), inside a span carrying the server's request
    // id (and the client's, if it sent one) that every log line of the request repeats.
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &axum::http::Request<_>| {
            let request_id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            let client_request_id = req
                .extensions()
                .get::<ClientRequestId>()
                .and_then(|c| c.0.as_deref())
                .unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %request_id, client_request_id = %client_request_id)
        })
        .on_request(())
        .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Millis));
    Router::new()
        .route("/", get(graphiql::landing))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/schema.graphql", get(graphiql::schema_sdl))
        .route("/assets/{hash}/{name}", get(graphiql::serve_asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(cors_layer(&cfg.cors_origins))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("request handler panicked");
            graphql_error_response(&AppError::from(anyhow::anyhow!("panic")))
        }))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuidV7))
        .layer(axum::middleware::map_request(take_client_request_id))
}

/// The server's own request id, generated for every request: a UUIDv7 (time-ordered). It alone is
/// trusted for correlation: logs, the `x-request-id` response header, `app.request_id` and the
/// `request_id` of audit and ledger entries.
#[derive(Debug, Clone, Copy, Default)]
struct MakeRequestUuidV7;

impl MakeRequestId for MakeRequestUuidV7 {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// The `x-request-id` a client sent (a request extension, always present; `None` when it sent none
/// or an odd one).
#[derive(Debug, Clone, Default)]
struct ClientRequestId(Option<String>);

/// A client may send its own `x-request-id` (to match our records with its logs). It is only a claim:
/// it is taken off the request before the server sets its own id, and kept apart — in the log span's
/// `client_request_id`, `app.client_request_id` and the audit trail's `client_request_id` — never as
/// the request id. It is not echoed (the client knows it; the response's `x-request-id` is the
/// server's). One that is not a plain token of at most 128 characters is dropped, never trimmed, so
/// what is recorded is exactly what the client sent.
async fn take_client_request_id(mut req: axum::extract::Request) -> axum::extract::Request {
    let plain = |b: &[u8]| {
        !b.is_empty()
            && b.len() <= 128
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
    };
    let client = req
        .headers_mut()
        .remove(REQUEST_ID)
        .filter(|v| plain(v.as_bytes()))
        .and_then(|v| v.to_str().ok().map(str::to_owned));
    req.extensions_mut().insert(ClientRequestId(client));
    req
}

fn cors_layer(origins: &str) -> CorsLayer {
    let origins: Vec<&str> = origins
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return CorsLayer::new();
    }
    let allow = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            HeaderName::from_static("x-org-id"),
        ])
        .expose_headers([REQUEST_ID, header::ETAG])
        .max_age(Duration::from_secs(600))
}

/// A whole-request failure in GraphQL's response shape, as `application/json` (for the panic
/// handler, which knows nothing of the request).
fn graphql_error_response(err: &AppError) -> Response {
    outcome_response(Outcome::failed(err), MediaType::Json)
}

/// A request the HTTP layer refuses with `status` before any GraphQL runs.
fn refused(status: StatusCode, err: &AppError, media: MediaType) -> Response {
    outcome_response(
        Outcome {
            status,
            ..Outcome::failed(err)
        },
        media,
    )
}

/// A request that is not a GraphQL request at all: 400 in either media type.
fn not_a_graphql_request(why: NotAGraphQLRequest, media: MediaType) -> Response {
    refused(StatusCode::BAD_REQUEST, &AppError::bad_input(why.0), media)
}

/// 406: the request's `Accept` allows neither media type. Said in `application/json`, which the client
/// may still read.
fn not_acceptable() -> Response {
    refused(
        StatusCode::NOT_ACCEPTABLE,
        &AppError::bad_input(
            "responses are application/graphql-response+json or application/json; the Accept header allows neither",
        ),
        MediaType::Json,
    )
}

fn outcome_response(outcome: Outcome, media: MediaType) -> Response {
    let (status, body) = protocol::render(&outcome, media);
    let mut response =
        (status, [(header::CONTENT_TYPE, media.content_type())], body).into_response();
    let headers = response.headers_mut();
    if let Some(secs) = outcome.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    // RFC 9110 requires `Allow` with a 405, which the engine answers only to a mutation sent with GET.
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    response
}

/// A response the caller may keep ([`Outcome::cacheable`]: a persisted query an analyst key ran over
/// GET): `Cache-Control: private, max-age=N` and a strong `ETag`, the sha256 of the body. A request
/// whose `If-None-Match` names that tag gets `304 Not Modified` without a body; it was still executed
/// (and counted by the rate limiter), since only the result tells whether the data changed.
fn cacheable_response(
    outcome: Outcome,
    headers: &HeaderMap,
    max_age_secs: u64,
    media: MediaType,
) -> Response {
    let (status, body) = protocol::render(&outcome, media);
    if status != StatusCode::OK {
        return outcome_response(outcome, media);
    }
    // A strong tag names one representation: the same bytes sent as the other media type are another.
    let digest = hex::encode(Sha256::digest(&body));
    let etag = match media {
        MediaType::Json => format!("\"{digest}\""),
        MediaType::GraphQLResponse => format!("\"{digest}-gr\""),
    };
    let not_modified = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|v| etag_listed(v, &etag));
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (status, [(header::CONTENT_TYPE, media.content_type())], body).into_response()
    };
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("private, max-age={max_age_secs}")) {
        out.insert(header::CACHE_CONTROL, value);
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    // The result is the caller's (its key, its organization): a shared cache must tell callers apart;
    // and its media type follows `Accept`.
    out.insert(
        header::VARY,
        HeaderValue::from_static("Authorization, x-org-id, Accept"),
    );
    response
}

/// Whether an `If-None-Match` value (`*`, or a list of entity tags, weak or strong) names `etag`;
/// `If-None-Match` compares weakly (RFC 9110, 13.1.2).
fn etag_listed(value: &HeaderValue, etag: &str) -> bool {
    value.to_str().is_ok_and(|v| {
        v.trim() == "*"
            || v.split(',')
                .map(str::trim)
                .any(|tag| tag.strip_prefix("W/").unwrap_or(tag) == etag)
    })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn run(
    state: &AppState,
    headers: &HeaderMap,
    request: async_graphql::Request,
    get: bool,
    client_request_id: Option<&str>,
    media: MediaType,
) -> Response {
    let started = std::time::Instant::now();
    let outcome = match credentials_from_headers(
        &state.verifier,
        header_str(headers, "authorization"),
        header_str(headers, "x-org-id"),
    )
    .await
    {
        Ok(credentials) => {
            let request_id = header_str(headers, REQUEST_ID.as_str());
            state
                .engine
                .execute(credentials, request, get, request_id, client_request_id)
                .await
        }
        Err(err) => Outcome::failed(&err),
    };
    let label = match outcome.status.as_u16() {
        200 if outcome.response.errors.is_empty() => "ok",
        200 => "error",
        401 => "unauthenticated",
        403 => "forbidden",
        429 => "rate_limited",
        // The database down, cut off or too slow (UNAVAILABLE, TIMEOUT): worth an alert of its own.
        503 => "unavailable",
        500..=599 => "internal",
        _ => "bad_request",
    };
    state
        .metrics
        .observe(label, started.elapsed(), outcome.statements);
    if outcome.cacheable && state.analyst_cache_max_age_secs > 0 {
        return cacheable_response(outcome, headers, state.analyst_cache_max_age_secs, media);
    }
    outcome_response(outcome, media)
}

/// Prometheus metrics (no tenant data in any label).
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state
        .metrics
        .render(&state.engine.pool, &state.engine.rate_limiter);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// A GraphQL request in a JSON body (queries and mutations). Refused before anything runs: 406 for an
/// `Accept` this server cannot answer, 415 for a body that is not `application/json`, 413 for one over
/// the limit, 400 for one that is not a GraphQL request.
async fn graphql_post(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<ClientRequestId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(media) = MediaType::negotiate(&headers) else {
        return not_acceptable();
    };
    if !protocol::is_json_body(&headers) {
        let mut response = refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &AppError::bad_input("a GraphQL POST needs `Content-Type: application/json`"),
            media,
        );
        // RFC 9110 (415): `Accept` in the response names the request media types that would do.
        response
            .headers_mut()
            .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        return response;
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let err = AppError::bad_input(format!(
                "request body is larger than {} bytes",
                state.max_body_bytes
            ));
            return refused(StatusCode::PAYLOAD_TOO_LARGE, &err, media);
        }
        Err(_) => {
            let err = AppError::bad_input("could not read the request body");
            return refused(StatusCode::BAD_REQUEST, &err, media);
        }
    };
    let request = match protocol::request_from_body(&body) {
        Ok(request) => request,
        Err(why) => return not_a_graphql_request(why, media),
    };
    run(&state, &headers, request, false, client.0.as_deref(), media).await
}

/// A websocket upgrade (subscriptions); GraphiQL for a browser (`Accept: text/html`) asking without
/// parameters; otherwise a query (GraphQL over HTTP GET: `query`, `operationName`, `variables`,
/// `extensions`), never a mutation (405).
async fn graphql_get(
    State(state): State<Arc<AppState>>,
    Extension(client): Extension<ClientRequestId>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    uri: Uri,
) -> Response {
    if let Ok(upgrade) = upgrade {
        return ws::upgrade(state, &headers, upgrade);
    }
    if uri.query().unwrap_or_default().is_empty() && protocol::accepts_html(&headers) {
        return graphiql::graphiql_page(&state.graphiql, &headers);
    }
    let Some(media) = MediaType::negotiate(&headers) else {
        return not_acceptable();
    };
    let request = match protocol::request_from_query_string(&uri) {
        Ok(request) => request,
        Err(why) => return not_a_graphql_request(why, media),
    };
    run(&state, &headers, request, true, client.0.as_deref(), media).await
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match db::ping(&state.engine.pool).await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(err) => {
            tracing::warn!(error = ?err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; draining in-flight requests");
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains for at most `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server =
        axum::serve(listener, router.into_make_service()).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = tx.send(());
        });
    let drained = async {
        if rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result.map_err(Into::into),
        () = drained => {
            tracing::warn!(grace_secs = grace.as_secs(), "requests still running after the grace period; stopping");
            Ok(())
        }
    }
}

/// Binds `addr` and returns the listener and its actual address (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

//! Wiring: from configuration to a running server. `serve`, `demo` and the HTTP tests all go through
//! [`build_state`] and [`Server::start`], so tests drive exactly what production runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::ai::{Ai, handlers};
use crate::authz::Authz;
use crate::billing;
use crate::config::{DbConfig, ServerConfig};
use crate::db;
use crate::http::{self, AppState};
use crate::identity::auth::JwtVerifier;
use crate::identity::jwks::Jwks;
use crate::jobs::{WorkerConfig, Workers};
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::ratelimit::{Fleet, OrgRateLimiter};
use crate::schema::executor::Engine;
use crate::schema::persisted::PersistedQueries;
use crate::schema::{Limits, build_schema};

/// Builds the shared state, refusing (fail closed) when the runtime role could bypass RLS.
pub async fn build_state(
    db_cfg: &DbConfig,
    cfg: &ServerConfig,
    ai: Arc<Ai>,
) -> anyhow::Result<Arc<AppState>> {
    let pool = db::runtime_pool(db_cfg)?;
    db::safety::check_runtime_role(&pool).await?;
    let persisted = PersistedQueries::from_setting(&cfg.persisted_dir)?;
    let source = persisted.source();
    if persisted.is_empty() {
        tracing::warn!(%source, "no persisted operations registered; analyst keys can run nothing");
    } else {
        tracing::info!(count = persisted.len(), %source, "persisted operations registered");
    }
    let mut verifier =
        JwtVerifier::new(cfg.jwt_secret.expose(), &cfg.jwt_issuer, &cfg.jwt_audience);
    if !cfg.jwks_url.is_empty() {
        let jwks = Jwks::new(&cfg.jwks_url)?;
        // Warm the cache; an identity provider that is down now must not keep the API from starting
        // (API keys and HS256 tokens still work, and keys are fetched again on demand).
        if let Err(err) = jwks.refresh().await {
            tracing::warn!(error = format!("{err:#}"), "JWKS not reachable at start-up");
        }
        verifier = verifier.with_jwks(jwks);
    }
    if cfg.jwt_secret.is_empty() && cfg.jwks_url.is_empty() {
        tracing::warn!(
            "neither DESKGRAPH_JWT_SECRET nor DESKGRAPH_JWKS_URL is set: only API keys can authenticate"
        );
    }
    let engine = Arc::new(Engine {
        schema: build_schema(Limits::from_config(cfg)),
        pool,
        authz: Arc::new(
            Authz::new()
                .await
                .context("failed to load the casbin policy")?,
        ),
        persisted,
        statement_timeout_ms: db_cfg.statement_timeout_ms,
        rate_limiter: Arc::new(OrgRateLimiter::with_floor(
            cfg.rate_limit_per_minute,
            cfg.rate_limit_floor_per_minute,
        )),
        ai,
        invitations_bind_email: cfg.invitations_bind_email,
    });
    let metrics = Metrics::new();
    let hub = Hub::new(engine.clone(), cfg.live, metrics.live.clone());
    let listen_setting = if db_cfg.database_listen_url.expose().is_empty() {
        "DATABASE_URL"
    } else {
        "DATABASE_LISTEN_URL"
    };
    let listen = db::tls::Target::from_url(db_cfg.listen_url(), listen_setting)?;
    Ok(Arc::new(AppState {
        engine,
        hub,
        listen,
        verifier,
        metrics,
        max_body_bytes: cfg.max_body_bytes,
        analyst_cache_max_age_secs: cfg.analyst_cache_max_age_secs,
        graphiql: http::GraphiqlSettings::default(),
    }))
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Background work (monthly allowances); aborted when the server stops.
    background: Vec<tokio::task::JoinHandle<()>>,
    /// In-process job workers, stopped gracefully after the HTTP server.
    workers: Option<Workers>,
    /// This instance's announcement to the fleet (the shared rate limit); left when it stops.
    fleet: Option<Fleet>,
    grace: Duration,
}

/// Starts job workers for the AI pipeline on `state`'s pool (none when `cfg.workers` is 0).
pub fn start_workers(
    state: &AppState,
    db_cfg: &DbConfig,
    cfg: &WorkerConfig,
) -> anyhow::Result<Option<Workers>> {
    if cfg.workers == 0 {
        return Ok(None);
    }
    Workers::start(
        state.engine.pool.clone(),
        db_cfg.listen_url(),
        db_cfg.statement_timeout_ms,
        cfg.clone(),
        handlers::handlers(&state.engine.ai),
    )
    .map(Some)
}

impl Server {
    /// Binds `cfg.listen` (port 0 picks a free port) and serves in a background task.
    pub async fn start(state: Arc<AppState>, cfg: &ServerConfig) -> anyhow::Result<Self> {
        let (listener, addr) = http::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let router = http::router(state.clone(), cfg);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let grace = cfg.shutdown.grace();
        let hub = state.hub.clone();
        let shutdown = async move {
            tokio::select! {
                () = http::shutdown_signal() => {},
                _ = rx => {},
            }
            // Websockets are not requests the HTTP server drains: close them (1001) first.
            hub.stop(grace).await;
        };
        let task = tokio::spawn(http::serve(listener, router, shutdown, grace));
        let mut background = vec![state.hub.start(state.listen.clone())];
        // Serve subscriptions once changes can be heard (a database that is down now must not keep
        // the API from starting: subscribers then get RESYNC when the connection comes up).
        if !state.hub.wait_listening(Duration::from_secs(5)).await {
            tracing::warn!(
                "live notifications not connected yet; subscriptions get RESYNC once they are"
            );
        }
        if cfg.allowance_interval_secs > 0 {
            background.push(billing::allowance::spawn(
                state.engine.pool.clone(),
                Duration::from_secs(cfg.allowance_interval_secs),
            ));
        }
        let fleet = if cfg.rate_limit_per_minute > 0 && cfg.instance_heartbeat_secs > 0 {
            Some(
                Fleet::join(
                    state.engine.pool.clone(),
                    state.engine.rate_limiter.clone(),
                    Duration::from_secs(cfg.instance_heartbeat_secs),
                )
                .await,
            )
        } else {
            None
        };
        tracing::info!(%addr, "deskgraph listening; GraphiQL at http://{addr}/graphql");
        Ok(Self {
            addr,
            state,
            shutdown: Some(tx),
            task,
            background,
            workers: None,
            fleet,
            grace,
        })
    }

    /// Runs `workers` with the server: they stop (gracefully) when it stops.
    pub fn with_workers(mut self, workers: Option<Workers>) -> Self {
        self.workers = workers;
        self
    }

    /// Waits until the server stops (a signal, or [`Server::stop`]).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let result = (&mut self.task).await;
        for task in self.background.drain(..) {
            task.abort();
        }
        if let Some(fleet) = self.fleet.take() {
            fleet.leave().await;
        }
        if let Some(workers) = self.workers.take() {
            workers.shutdown(self.grace).await;
        }
        result.context("server task failed")?
    }

    /// Stops accepting requests, drains, and waits.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait().await
    }
}

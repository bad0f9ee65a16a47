//! Typed configuration, read once from the environment (and flags) at start-up and passed down.
//! Every setting is documented in `.env.example` and in `deskgraph <command> --help`.

use std::net::SocketAddr;

use crate::secret::{Secret, SecretUrl};

/// Default of `DATABASE_URL`.
pub const DEFAULT_DATABASE_URL: &str = "postgres://deskgraph_app@127.0.0.1:5432/deskgraph";
/// Default of `DATABASE_ADMIN_URL`.
pub const DEFAULT_DATABASE_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/deskgraph";
/// Default of `DESKGRAPH_APP_ROLE`.
pub const DEFAULT_APP_ROLE: &str = "deskgraph_app";
/// Default of `DESKGRAPH_STATEMENT_TIMEOUT_MS`.
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 10_000;

/// Database settings, as the code that connects reads them. A command reads from its flags and the
/// environment only the settings it uses (the `*Args` groups below, so that its `--help` lists
/// nothing it ignores); the others keep their defaults.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// Runtime connection (`DATABASE_URL`).
    pub database_url: SecretUrl,
    /// Owner connection (`DATABASE_ADMIN_URL`).
    pub database_admin_url: SecretUrl,
    /// Session connection for `LISTEN` (`DATABASE_LISTEN_URL`); empty: `database_url`.
    pub database_listen_url: SecretUrl,
    /// The runtime LOGIN role `migrate` creates (`DESKGRAPH_APP_ROLE`).
    pub app_role: String,
    /// Password `migrate` sets on it, unchanged when empty (`DESKGRAPH_APP_PASSWORD`).
    pub app_password: Secret,
    /// Prepare statements once per connection (`DESKGRAPH_DB_PREPARED_STATEMENTS`).
    pub prepared_statements: bool,
    /// Pooled runtime connections (`DESKGRAPH_DB_POOL_SIZE`).
    pub pool_size: usize,
    /// Statement timeout of every operation's transaction (`DESKGRAPH_STATEMENT_TIMEOUT_MS`).
    pub statement_timeout_ms: u64,
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.into(),
            database_admin_url: DEFAULT_DATABASE_ADMIN_URL.into(),
            database_listen_url: SecretUrl::default(),
            app_role: DEFAULT_APP_ROLE.into(),
            app_password: Secret::default(),
            prepared_statements: true,
            pool_size: 16,
            statement_timeout_ms: DEFAULT_STATEMENT_TIMEOUT_MS,
        }
    }
}

impl DbConfig {
    /// The URL for `LISTEN` connections: `DATABASE_LISTEN_URL`, or `DATABASE_URL` when it is empty.
    pub fn listen_url(&self) -> &str {
        match self.database_listen_url.expose() {
            "" => self.database_url.expose(),
            url => url,
        }
    }
}

/// `DATABASE_URL` (`serve`, `worker`, `reindex`).
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseUrlArgs {
    /// Runtime connection (the non-superuser, non-BYPASSRLS application role).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true
    )]
    pub database_url: SecretUrl,
}

/// `DATABASE_ADMIN_URL` (`migrate`, `reindex`).
#[derive(Debug, Clone, clap::Args)]
pub struct AdminUrlArgs {
    /// Owner connection (a superuser, or a role with BYPASSRLS and CREATEROLE).
    #[arg(
        long,
        env = "DATABASE_ADMIN_URL",
        default_value = DEFAULT_DATABASE_ADMIN_URL,
        hide_env_values = true
    )]
    pub database_admin_url: SecretUrl,
}

/// The runtime role that `migrate` (and `demo`) create.
#[derive(Debug, Clone, clap::Args)]
pub struct AppRoleArgs {
    /// Name of the LOGIN role the server connects as; `migrate` creates it when missing.
    #[arg(long, env = "DESKGRAPH_APP_ROLE", default_value = DEFAULT_APP_ROLE)]
    pub app_role: String,

    /// Password `migrate` sets on the runtime role (left unchanged when empty).
    #[arg(
        long,
        env = "DESKGRAPH_APP_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub app_password: Secret,
}

/// `DESKGRAPH_STATEMENT_TIMEOUT_MS` (every command that runs operations or jobs).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct StatementTimeoutArgs {
    /// Statement timeout applied to every GraphQL operation's transaction, in milliseconds.
    #[arg(long, env = "DESKGRAPH_STATEMENT_TIMEOUT_MS", default_value_t = DEFAULT_STATEMENT_TIMEOUT_MS)]
    pub statement_timeout_ms: u64,
}

/// The runtime pool of a long-running process (`serve`, `worker`).
#[derive(Debug, Clone, clap::Args)]
pub struct RuntimeDbArgs {
    #[command(flatten)]
    pub url: DatabaseUrlArgs,

    /// Direct session connection for `LISTEN` (live subscriptions and job wake-ups), which must not go
    /// through a transaction-mode pooler (PgBouncer `pool_mode=transaction`, RDS Proxy, Supavisor's
    /// transaction port). Empty: `DATABASE_URL`.
    #[arg(
        long,
        env = "DATABASE_LISTEN_URL",
        default_value = "",
        hide_env_values = true
    )]
    pub database_listen_url: SecretUrl,

    /// Whether statements are prepared once per connection and reused. Set `false` when
    /// `DATABASE_URL` goes through a transaction-mode pooler that cannot keep named prepared
    /// statements (PgBouncer before 1.21 or with `max_prepared_statements = 0`): every statement is
    /// then sent unnamed, in one message (slower: PostgreSQL plans it each time).
    #[arg(
        long,
        env = "DESKGRAPH_DB_PREPARED_STATEMENTS",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub prepared_statements: bool,

    /// Maximum number of pooled runtime connections.
    #[arg(long, env = "DESKGRAPH_DB_POOL_SIZE", default_value_t = 16)]
    pub pool_size: usize,

    #[command(flatten)]
    pub timeout: StatementTimeoutArgs,
}

impl From<RuntimeDbArgs> for DbConfig {
    fn from(args: RuntimeDbArgs) -> Self {
        Self {
            database_url: args.url.database_url,
            database_listen_url: args.database_listen_url,
            prepared_statements: args.prepared_statements,
            pool_size: args.pool_size,
            statement_timeout_ms: args.timeout.statement_timeout_ms,
            ..Self::default()
        }
    }
}

/// What `migrate` reads: the owner connection and the runtime role to create.
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateDbArgs {
    #[command(flatten)]
    pub admin: AdminUrlArgs,
    #[command(flatten)]
    pub role: AppRoleArgs,
}

impl From<MigrateDbArgs> for DbConfig {
    fn from(args: MigrateDbArgs) -> Self {
        Self {
            database_admin_url: args.admin.database_admin_url,
            app_role: args.role.app_role,
            app_password: args.role.app_password,
            ..Self::default()
        }
    }
}

/// What `reindex` reads: the owner connection (to list organizations) and the runtime one (to queue).
#[derive(Debug, Clone, clap::Args)]
pub struct ReindexDbArgs {
    #[command(flatten)]
    pub url: DatabaseUrlArgs,
    #[command(flatten)]
    pub admin: AdminUrlArgs,
    #[command(flatten)]
    pub timeout: StatementTimeoutArgs,
}

impl From<ReindexDbArgs> for DbConfig {
    fn from(args: ReindexDbArgs) -> Self {
        Self {
            database_url: args.url.database_url,
            database_admin_url: args.admin.database_admin_url,
            statement_timeout_ms: args.timeout.statement_timeout_ms,
            ..Self::default()
        }
    }
}

/// Settings of the HTTP/GraphQL server.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerConfig {
    /// Address the HTTP server listens on.
    #[arg(long, env = "DESKGRAPH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Shared secret for HS256 JWTs (development and simple deployments). Required to accept JWTs.
    #[arg(
        long,
        env = "DESKGRAPH_JWT_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub jwt_secret: Secret,

    /// JWKS endpoint of an external identity provider (e.g. `https://idp.example/.well-known/jwks.json`):
    /// tokens signed with its RS256/ES256/EdDSA keys are accepted. Off when empty.
    #[arg(long, env = "DESKGRAPH_JWKS_URL", default_value = "")]
    pub jwks_url: String,

    /// Expected `iss` claim of JWTs; not checked when empty.
    #[arg(long, env = "DESKGRAPH_JWT_ISSUER", default_value = "")]
    pub jwt_issuer: String,

    /// Expected `aud` claim of JWTs; not checked when empty.
    #[arg(long, env = "DESKGRAPH_JWT_AUDIENCE", default_value = "")]
    pub jwt_audience: String,

    /// Whether `acceptInvitation` requires the caller's token to carry the invited e-mail (and, from
    /// an identity provider, not `email_verified: false`). Turn off only when your identity provider
    /// issues no e-mails: then whoever holds an invitation token can use it.
    #[arg(
        long,
        env = "DESKGRAPH_INVITATIONS_BIND_EMAIL",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub invitations_bind_email: bool,

    /// Comma-separated origins allowed by CORS (`*` for any); CORS is off when empty.
    #[arg(long, env = "DESKGRAPH_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "DESKGRAPH_MAX_BODY_BYTES", default_value_t = 1_048_576)]
    pub max_body_bytes: usize,

    /// Deepest accepted GraphQL selection.
    #[arg(long, env = "DESKGRAPH_MAX_DEPTH", default_value_t = 15)]
    pub max_depth: usize,

    /// Highest accepted GraphQL complexity (a list field counts its page size, at most the largest
    /// page, times its selection).
    #[arg(long, env = "DESKGRAPH_MAX_COMPLEXITY", default_value_t = 5_000)]
    pub max_complexity: usize,

    /// Folder of persisted operations (`*.graphql`, one named operation each) to register instead of
    /// the catalogue compiled into the binary (`schema/persisted/`); empty: the embedded catalogue.
    /// Persisted operations are the only documents API keys with the `analyst` role may run.
    #[arg(long, env = "DESKGRAPH_PERSISTED_DIR", default_value = "")]
    pub persisted_dir: String,

    /// Seconds an analyst key's client may reuse a persisted query's result fetched over GET
    /// (`Cache-Control: private, max-age=N`, with an `ETag` for `If-None-Match` revalidation);
    /// 0: `no-store`, like every other response.
    #[arg(
        long,
        env = "DESKGRAPH_ANALYST_CACHE_MAX_AGE_SECS",
        default_value_t = 60
    )]
    pub analyst_cache_max_age_secs: u64,

    /// GraphQL operations per organization and minute across all server instances (bursts of as
    /// many); 0 turns the limit off. Callers without an organization are limited per user. Each
    /// instance enforces its share: this limit divided by the live instances (see
    /// `DESKGRAPH_INSTANCE_HEARTBEAT_SECS`).
    #[arg(long, env = "DESKGRAPH_RATE_LIMIT_PER_MINUTE", default_value_t = 1_200)]
    pub rate_limit_per_minute: u32,

    /// The least one instance enforces of the rate limit, however many instances run (so a large
    /// fleet does not refuse everything while its shares are tiny).
    #[arg(
        long,
        env = "DESKGRAPH_RATE_LIMIT_FLOOR_PER_MINUTE",
        default_value_t = 10
    )]
    pub rate_limit_floor_per_minute: u32,

    /// Seconds between this instance's announcements in the database, from which every instance
    /// counts the live ones and takes its share of the rate limit (an instance that stops
    /// announcing is forgotten after three periods). 0: no announcements; each instance enforces the
    /// whole limit on its own.
    #[arg(long, env = "DESKGRAPH_INSTANCE_HEARTBEAT_SECS", default_value_t = 5)]
    pub instance_heartbeat_secs: u64,

    /// Seconds between checks for monthly credit allowances that are due (one check at start-up);
    /// 0 turns the background grant off. Any number of instances may run it.
    #[arg(
        long,
        env = "DESKGRAPH_ALLOWANCE_INTERVAL_SECS",
        default_value_t = 3_600
    )]
    pub allowance_interval_secs: u64,

    #[command(flatten)]
    pub live: LiveConfig,

    #[command(flatten)]
    pub shutdown: ShutdownConfig,
}

/// Live subscriptions over websockets (`/graphql`, graphql-transport-ws and legacy graphql-ws).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct LiveConfig {
    /// Seconds a new websocket has to send `connection_init` before it is closed (4408).
    #[arg(long, env = "DESKGRAPH_WS_INIT_TIMEOUT_SECS", default_value_t = 10)]
    pub ws_init_timeout_secs: u64,

    /// Seconds between keep-alive messages to idle sockets (`ka` on the legacy protocol, `ping` on
    /// graphql-transport-ws); 0 turns them off.
    #[arg(long, env = "DESKGRAPH_WS_KEEPALIVE_SECS", default_value_t = 15)]
    pub ws_keepalive_secs: u64,

    /// Messages waiting to be written to one socket. A client that reads too slowly to keep its queue
    /// below this is disconnected with 1013 (try again later) instead of growing the server's memory.
    #[arg(long, env = "DESKGRAPH_WS_QUEUE", default_value_t = 256)]
    pub ws_queue: usize,

    /// Operations (subscriptions, and queries or mutations in flight) one socket may run at once.
    #[arg(long, env = "DESKGRAPH_WS_MAX_SUBSCRIPTIONS", default_value_t = 25)]
    pub ws_max_subscriptions: usize,

    /// Sockets one organization may hold open on one instance; more are closed with 1013.
    #[arg(
        long,
        env = "DESKGRAPH_WS_MAX_CONNECTIONS_PER_ORG",
        default_value_t = 5_000
    )]
    pub ws_max_connections_per_org: usize,

    /// Milliseconds events are gathered before they are re-read and delivered: bursts on one ticket
    /// within the window become one event, and one read-only transaction per subscriber identity
    /// re-reads the whole batch.
    #[arg(long, env = "DESKGRAPH_LIVE_COALESCE_MS", default_value_t = 50)]
    pub live_coalesce_ms: u64,

    /// Seconds between checks that a subscriber still has access (member removed, API key revoked);
    /// one who lost it is closed with 4403. Events are re-read with a fresh check in any case.
    #[arg(long, env = "DESKGRAPH_LIVE_ACCESS_CHECK_SECS", default_value_t = 10)]
    pub live_access_check_secs: u64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            ws_init_timeout_secs: 10,
            ws_keepalive_secs: 15,
            ws_queue: 256,
            ws_max_subscriptions: 25,
            ws_max_connections_per_org: 5_000,
            live_coalesce_ms: 50,
            live_access_check_secs: 10,
        }
    }
}

/// How a process stops on SIGTERM / Ctrl-C (declared once for `serve`, `worker` and `demo`).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ShutdownConfig {
    /// Seconds in-flight requests and running jobs get to finish on shutdown (SIGTERM / Ctrl-C);
    /// jobs still running then are put back in the queue.
    #[arg(long, env = "DESKGRAPH_SHUTDOWN_GRACE_SECS", default_value_t = 20)]
    pub shutdown_grace_secs: u64,
}

impl ShutdownConfig {
    pub fn grace(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// Logging settings.
#[derive(Debug, Clone, clap::Args)]
pub struct LogConfig {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `deskgraph=debug,tower_http=info`.
    #[arg(
        long = "log",
        env = "DESKGRAPH_LOG",
        default_value = "info",
        global = true
    )]
    pub filter: String,

    /// `text` for people, `json` for log pipelines.
    #[arg(
        long = "log-format",
        env = "DESKGRAPH_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub format: String,
}

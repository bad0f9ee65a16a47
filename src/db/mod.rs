//! PostgreSQL access: the runtime pool and [`TenantTx`], the one transaction a GraphQL operation runs
//! in, opened with the caller's tenant context set in the same round trip as `BEGIN`.

pub mod listen;
pub mod migrate;
pub mod safety;
pub mod tls;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::{ManagerConfig, Object, RecyclingMethod};
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use crate::authz::Role;
use crate::config::DbConfig;
use crate::error::AppResult;

/// Builds the runtime connection pool. Connections are created lazily; call [`ping`] to fail fast.
pub fn runtime_pool(cfg: &DbConfig) -> anyhow::Result<Pool> {
    Ok(pool_for(cfg.database_url.expose(), cfg.pool_size)?
        .with_prepared_statements(cfg.prepared_statements))
}

/// The runtime connection pool: deadpool's, and how statements go out on its connections.
#[derive(Clone)]
pub struct Pool {
    inner: deadpool_postgres::Pool,
    prepared_statements: bool,
    /// [`tls::Target::connect_failed`] of the pool's target: where its connections go, as whom.
    connect_failed: Arc<str>,
}

impl Pool {
    /// Whether statements are prepared once per connection and reused (`true`, the default), or sent
    /// as the unnamed statement every time (for transaction-mode poolers that cannot keep a named
    /// statement from one transaction to the next; see [`TenantTx`]).
    pub fn with_prepared_statements(mut self, prepared: bool) -> Self {
        self.prepared_statements = prepared;
        self
    }

    pub fn prepared_statements(&self) -> bool {
        self.prepared_statements
    }

    /// A connection (a new one when none is idle), waiting at most the connect timeout.
    pub async fn get(&self) -> Result<Object, deadpool_postgres::PoolError> {
        self.inner.get().await
    }

    pub fn status(&self) -> deadpool_postgres::Status {
        self.inner.status()
    }

    /// How a failure to connect is reported: `could not connect to PostgreSQL at host:port (sslmode=…)
    /// as role "…"` (deadpool's own errors name neither).
    pub fn connect_failed(&self) -> &str {
        &self.connect_failed
    }
}

pub fn pool_for(url: &str, size: usize) -> anyhow::Result<Pool> {
    let mut target = tls::Target::from_url(url, "DATABASE_URL")?;
    if target.config().get_application_name().is_none() {
        target.config_mut().application_name("deskgraph");
    }
    // An unreachable database must fail a request in seconds (503, retryable), not hang it: the
    // URL's `connect_timeout` (libpq's parameter) bounds connecting, and the wait for a pooled
    // connection too.
    let timeout = match target.config().get_connect_timeout() {
        Some(timeout) => *timeout,
        None => {
            target.config_mut().connect_timeout(DEFAULT_CONNECT_TIMEOUT);
            DEFAULT_CONNECT_TIMEOUT
        }
    };
    let connect_failed = target.connect_failed().into();
    // A route that goes silent (no reset, no FIN: a failover, a dead NAT entry) must fail in seconds,
    // not after the kernel's two-hour keepalive: probe idle connections every 10 s after 30 s, and
    // give up on data unacknowledged for 30 s — unless the URL says otherwise.
    let pg = target.config_mut();
    if pg.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        pg.keepalives_idle(Duration::from_secs(30));
    }
    if pg.get_keepalives_interval().is_none() {
        pg.keepalives_interval(Duration::from_secs(10));
    }
    if pg.get_keepalives_retries().is_none() {
        pg.keepalives_retries(3);
    }
    if pg.get_tcp_user_timeout().is_none() {
        pg.tcp_user_timeout(Duration::from_secs(30));
    }
    // tokio-postgres tries each host of a multi-host URL for up to `connect_timeout`, and the TLS
    // handshake and authentication come after: a new connection may take that long per host, plus
    // a margin.
    let hosts = u32::try_from(pg.get_hosts().len().max(1)).unwrap_or(u32::MAX);
    let create = timeout.saturating_mul(hosts) + Duration::from_secs(2);
    let manager = target.pool_manager(ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    });
    let inner = deadpool_postgres::Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(create))
        .create_timeout(Some(create))
        .build()
        .context("failed to build the connection pool")?;
    Ok(Pool {
        inner,
        prepared_statements: true,
        connect_failed,
    })
}

/// `connect_timeout` of a database URL that sets none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks that the database answers (used by `/readyz` and at start-up).
pub async fn ping(pool: &Pool) -> AppResult<()> {
    let client = pool.get().await?;
    client.simple_query("select 1").await?;
    Ok(())
}

/// How a transaction may touch data. Queries run READ ONLY; mutations read-write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// Who the transaction acts for, as resolved by PostgreSQL when the transaction opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantContext {
    pub org_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub role: Option<Role>,
    /// The server's own background work (monthly allowances, AI jobs) for `org_id`: `app.role` is
    /// `system`, which the database allows only what such work needs. Never set for a request.
    pub system: bool,
}

impl TenantContext {
    /// The server acting on its own behalf in `org_id`.
    pub fn system(org_id: Uuid) -> Self {
        Self {
            org_id: Some(org_id),
            system: true,
            ..Self::default()
        }
    }

    /// The server's own work before any organization is known (listing organizations due an
    /// allowance, claiming jobs): only `auth_private` functions for `system` answer it.
    pub fn system_unscoped() -> Self {
        Self {
            system: true,
            ..Self::default()
        }
    }

    /// The value of `app.role`.
    fn role_setting(&self) -> &'static str {
        match (self.system, self.role) {
            (true, _) => "system",
            (false, Some(role)) => role.as_str(),
            (false, None) => "",
        }
    }
}

/// How to open a transaction.
#[derive(Debug, Clone, Copy)]
pub struct TxOptions<'a> {
    pub access: Access,
    pub statement_timeout_ms: u64,
    /// The server's own id of the request (or job run), recorded in `app.request_id` (and so in audit
    /// and ledger entries).
    pub request_id: Option<&'a str>,
    /// The `x-request-id` the client sent, recorded apart in `app.client_request_id` (and so in audit
    /// entries' `client_request_id`); never used as `request_id`.
    pub client_request_id: Option<&'a str>,
}

impl TxOptions<'static> {
    pub fn new(access: Access, statement_timeout_ms: u64) -> Self {
        Self {
            access,
            statement_timeout_ms,
            request_id: None,
            client_request_id: None,
        }
    }
}

/// Longest request id kept; longer ones are cut (the client's `x-request-id` goes through this too).
const MAX_REQUEST_ID: usize = 128;

/// A request id made safe to store: printable ASCII, at most [`MAX_REQUEST_ID`] characters.
fn clean_request_id(id: Option<&str>) -> String {
    id.unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(MAX_REQUEST_ID)
        .collect()
}

/// What the caller presented; resolved into a [`TenantContext`] inside the transaction.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A verified JWT: the identity provider's subject and profile, and the organization asked for.
    User {
        subject: String,
        email: Option<String>,
        /// The token's `email_verified` claim (identity providers); `None` when it has none.
        email_verified: Option<bool>,
        name: Option<String>,
        org_id: Option<Uuid>,
    },
    /// The sha256 of an API key's secret, and the organization the request named (a key acts only
    /// for its own organization; naming another one is refused).
    ApiKey {
        secret_hash: Vec<u8>,
        org_id: Option<Uuid>,
    },
    /// A context the server itself vouches for (seeding, background work, tests).
    Trusted(TenantContext),
}

/// One PostgreSQL transaction carrying the tenant context in transaction-scoped settings.
///
/// Resolvers of one operation share it (tokio-postgres pipelines their statements). It must end with
/// [`TenantTx::commit`] or [`TenantTx::rollback`]; if it is dropped unfinished (a panic, a cancelled
/// request, a failed COMMIT) its connection is detached from the pool and closed, so no transaction
/// or setting can leak into another request.
pub struct TenantTx {
    client: Option<Object>,
    /// Whether statements are prepared and cached on the connection ([`Pool::prepared_statements`]).
    prepared: bool,
    context: std::sync::RwLock<TenantContext>,
    finished: AtomicBool,
    statements: AtomicUsize,
    /// Serialises [`TenantTx::savepoint`] sections: savepoints of one connection nest, so two
    /// interleaved sections would roll back each other's work.
    savepoints: tokio::sync::Mutex<()>,
}

const BEGIN_READ_WRITE: &str = "begin isolation level read committed read write";

// The settings are set by the same statement that resolves the caller, so that `BEGIN`, the
// authentication and the tenant context go to the server in one round trip.
const OPEN_AS_USER: &str = "select a.user_id, a.member_role, \
       set_config('app.user_id', a.user_id::text, true), \
       set_config('app.org_id', case when a.member_role is null then '' else coalesce($4::text, '') end, true), \
       set_config('app.role', coalesce(a.member_role, ''), true), \
       set_config('app.api_key_id', '', true), \
       set_config('statement_timeout', $5, true), \
       set_config('app.request_id', $6, true), \
       set_config('app.client_request_id', $7, true) \
  from auth_private.authenticate_user($1, $2, $3, $4) a";

const OPEN_AS_API_KEY: &str = "select a.api_key_id, a.org_id, a.role, \
       set_config('app.api_key_id', a.api_key_id::text, true), \
       set_config('app.org_id', a.org_id::text, true), \
       set_config('app.role', a.role, true), \
       set_config('app.user_id', '', true), \
       set_config('statement_timeout', $2, true), \
       set_config('app.request_id', $3, true), \
       set_config('app.client_request_id', $4, true) \
  from auth_private.authenticate_api_key($1) a";

/// Sets a context the server vouches for; `$5` is the statement timeout, `$6` the request id and `$7`
/// the client's request id (empty keeps the current one).
const SET_CONTEXT: &str = "select set_config('app.org_id', $1, true), set_config('app.user_id', $2, true), \
       set_config('app.api_key_id', $3, true), set_config('app.role', $4, true), \
       set_config('statement_timeout', coalesce(nullif($5, ''), current_setting('statement_timeout')), true), \
       set_config('app.request_id', coalesce(nullif($6, ''), current_setting('app.request_id', true), ''), true), \
       set_config('app.client_request_id', coalesce(nullif($7, ''), current_setting('app.client_request_id', true), ''), true)";

/// The text values of a context's settings (empty for unset), in `SET_CONTEXT`'s order.
fn context_settings(ctx: &TenantContext) -> [String; 4] {
    let text = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    [
        text(ctx.org_id),
        text(ctx.user_id),
        text(ctx.api_key_id),
        ctx.role_setting().to_owned(),
    ]
}

impl TenantTx {
    /// Opens a transaction on `client` and resolves `credentials` into the tenant context, all in one
    /// round trip. Returns an unfinished-but-safe transaction even when the caller is unknown: check
    /// [`TenantTx::context`] (an unknown API key leaves it empty).
    async fn open(
        client: Object,
        prepared: bool,
        credentials: &Credentials,
        options: TxOptions<'_>,
    ) -> AppResult<Self> {
        let access = options.access;
        let tx = TenantTx {
            client: Some(client),
            prepared,
            context: Default::default(),
            finished: AtomicBool::new(false),
            statements: AtomicUsize::new(0),
            savepoints: tokio::sync::Mutex::new(()),
        };
        let client = tx.client()?;
        let timeout = options.statement_timeout_ms.to_string();
        let request_id = clean_request_id(options.request_id);
        let client_request_id = clean_request_id(options.client_request_id);
        // Reads run in a READ ONLY transaction. Resolving a user may create their row on first sight,
        // so the read-only switch comes after it (allowed: a transaction may become read-only late).
        // Writes take their organization's write lock in their first write statement (a statement
        // trigger; see app.lock_org_for_writes), not here: a caller refused or rate-limited after this
        // round trip must not queue behind the organization's writers.
        let begin = client.query_typed(BEGIN_READ_WRITE, &[]);
        let read_only = async {
            if access == Access::ReadOnly {
                client
                    .query_typed("set transaction read only", &[])
                    .await
                    .map(|_| ())
            } else {
                Ok(())
            }
        };
        let trusted;
        let (sql, params): (&str, Vec<(&(dyn ToSql + Sync), Type)>) = match credentials {
            Credentials::User {
                subject,
                email,
                name,
                org_id,
                ..
            } => (
                OPEN_AS_USER,
                vec![
                    (subject, Type::TEXT),
                    (email, Type::TEXT),
                    (name, Type::TEXT),
                    (org_id, Type::UUID),
                    (&timeout, Type::TEXT),
                    (&request_id, Type::TEXT),
                    (&client_request_id, Type::TEXT),
                ],
            ),
            Credentials::ApiKey { secret_hash, .. } => (
                OPEN_AS_API_KEY,
                vec![
                    (secret_hash, Type::BYTEA),
                    (&timeout, Type::TEXT),
                    (&request_id, Type::TEXT),
                    (&client_request_id, Type::TEXT),
                ],
            ),
            Credentials::Trusted(ctx) => {
                trusted = context_settings(ctx);
                let [org, user, key, role] = &trusted;
                (
                    SET_CONTEXT,
                    vec![
                        (org, Type::TEXT),
                        (user, Type::TEXT),
                        (key, Type::TEXT),
                        (role, Type::TEXT),
                        (&timeout, Type::TEXT),
                        (&request_id, Type::TEXT),
                        (&client_request_id, Type::TEXT),
                    ],
                )
            }
        };
        // One round trip: BEGIN, the caller's resolution with its settings, and the read-only switch.
        let (begin, rows, read_only) =
            tokio::join!(begin, client.query_typed(sql, &params), read_only);
        begin?;
        let rows = rows?;
        read_only?;
        let context = match credentials {
            Credentials::User { org_id, .. } => {
                let row = rows.first().context("authenticate_user returned no row")?;
                let role = row
                    .try_get::<_, Option<String>>(1)?
                    .map(|r| r.parse::<Role>())
                    .transpose()?;
                TenantContext {
                    org_id: if role.is_some() { *org_id } else { None },
                    user_id: Some(row.try_get(0)?),
                    api_key_id: None,
                    role,
                    system: false,
                }
            }
            // An unknown or revoked key resolves to no row: an empty context, refused by the caller.
            Credentials::ApiKey { .. } => match rows.first() {
                Some(row) => TenantContext {
                    api_key_id: Some(row.try_get(0)?),
                    org_id: Some(row.try_get(1)?),
                    role: Some(row.try_get::<_, String>(2)?.parse::<Role>()?),
                    user_id: None,
                    system: false,
                },
                None => TenantContext::default(),
            },
            Credentials::Trusted(ctx) => ctx.clone(),
        };
        tx.statements.store(3, Ordering::Relaxed);
        *tx.context
            .write()
            .map_err(|_| anyhow::anyhow!("context lock poisoned"))? = context;
        Ok(tx)
    }

    /// Checks out a pooled connection and opens a transaction on it.
    pub async fn begin(
        pool: &Pool,
        credentials: &Credentials,
        options: TxOptions<'_>,
    ) -> AppResult<Self> {
        let client = pool.get().await?;
        Self::open(client, pool.prepared_statements, credentials, options).await
    }

    /// A transaction of the server's own work before any organization is known
    /// ([`TenantContext::system_unscoped`]): listing organizations due an allowance, claiming jobs,
    /// announcing the instance.
    pub async fn begin_system_unscoped(
        pool: &Pool,
        access: Access,
        statement_timeout_ms: u64,
    ) -> AppResult<Self> {
        Self::begin(
            pool,
            &Credentials::Trusted(TenantContext::system_unscoped()),
            TxOptions::new(access, statement_timeout_ms),
        )
        .await
    }

    fn client(&self) -> AppResult<&Object> {
        self.client
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("transaction already closed").into())
    }

    /// The tenant context the transaction currently carries.
    pub fn context(&self) -> TenantContext {
        self.context.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Replaces the tenant context for the rest of the transaction (used when an operation creates an
    /// organization and acts in it). Returns the previous context so it can be restored.
    pub async fn set_context(&self, ctx: TenantContext) -> AppResult<TenantContext> {
        let [org, user, key, role] = context_settings(&ctx);
        self.query(SET_CONTEXT, &[&org, &user, &key, &role, &"", &"", &""])
            .await?;
        let mut guard = self
            .context
            .write()
            .map_err(|_| anyhow::anyhow!("context lock poisoned"))?;
        Ok(std::mem::replace(&mut *guard, ctx))
    }

    /// Number of SQL statements sent in this transaction so far (BEGIN and the context count as 3).
    pub fn statement_count(&self) -> usize {
        self.statements.load(Ordering::Relaxed)
    }

    /// Runs one statement and returns its rows and the number of rows it affected.
    ///
    /// With prepared statements (the default), each statement text is prepared once per connection
    /// and reused: one round trip, and PostgreSQL plans it once. Without
    /// (`DESKGRAPH_DB_PREPARED_STATEMENTS=false`), every statement goes out as PostgreSQL's *unnamed*
    /// statement — Parse, Bind, Execute and Sync in one message — so nothing outlives the transaction
    /// on the server connection. That is what a transaction-mode pooler needs (PgBouncer before 1.21
    /// or with `max_prepared_statements = 0`, older Supavisor, RDS Proxy): it hands each transaction to
    /// whichever server connection is free, where a statement prepared in an earlier transaction does
    /// not exist. It is still one round trip (see [`param_types`]), but PostgreSQL parses and plans
    /// every statement every time (measured: about a quarter less throughput on the ticket list).
    async fn run(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> AppResult<Result<(Vec<Row>, u64), tokio_postgres::Error>> {
        use futures_util::TryStreamExt as _;
        let client = self.client()?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        let types = if self.prepared {
            None
        } else {
            let types = match param_types(client, sql).await {
                Ok(types) => types,
                Err(err) => return Ok(Err(err)),
            };
            // What tokio-postgres checks for a prepared statement (zip would drop extra values).
            if types.len() != params.len() {
                let (want, got) = (types.len(), params.len());
                return Err(
                    anyhow::anyhow!("{sql}: {want} parameters expected, {got} given").into(),
                );
            }
            Some(types)
        };
        Ok(async {
            let stream = match types {
                None => {
                    let statement = client.prepare_cached(sql).await?;
                    client.query_raw(&statement, params.iter().copied()).await?
                }
                Some(types) => {
                    client
                        .query_typed_raw(sql, params.iter().copied().zip(types.iter().cloned()))
                        .await?
                }
            };
            let mut stream = std::pin::pin!(stream);
            let mut rows = Vec::new();
            while let Some(row) = stream.try_next().await? {
                rows.push(row);
            }
            let affected = stream.rows_affected().unwrap_or(rows.len() as u64);
            Ok((rows, affected))
        }
        .await)
    }

    pub async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> AppResult<Vec<Row>> {
        Ok(self.run(sql, params).await??.0)
    }

    /// Like [`TenantTx::query`], but hands database errors back unconverted so the caller can map
    /// constraint violations to user errors.
    pub async fn query_raw(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> AppResult<Result<Vec<Row>, tokio_postgres::Error>> {
        Ok(self.run(sql, params).await?.map(|(rows, _)| rows))
    }

    pub async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> AppResult<Option<Row>> {
        let mut rows = self.query(sql, params).await?;
        match rows.len() {
            0 | 1 => Ok(rows.pop()),
            n => Err(anyhow::anyhow!("expected at most one row, got {n}: {sql}").into()),
        }
    }

    pub async fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> AppResult<Row> {
        let mut rows = self.query(sql, params).await?;
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(anyhow::anyhow!("expected one row, got {n}: {sql}").into()),
        }
    }

    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> AppResult<u64> {
        Ok(self.run(sql, params).await??.1)
    }

    /// Runs `f` inside a savepoint: if it fails, its statements are undone and the transaction stays
    /// usable (an aborted statement would otherwise poison the whole operation). Used where a failure
    /// is an answer, not the end (e.g. a credit hold refused for lack of credits). Sections run one at
    /// a time per transaction; `f` must not open another savepoint (it would wait for itself).
    pub async fn savepoint<T, F>(&self, name: &'static str, f: F) -> AppResult<T>
    where
        F: std::future::Future<Output = AppResult<T>>,
    {
        let _section = self.savepoints.lock().await;
        self.simple(&format!("savepoint {name}")).await?;
        match f.await {
            Ok(value) => {
                self.simple(&format!("release savepoint {name}")).await?;
                Ok(value)
            }
            Err(err) => {
                self.simple(&format!("rollback to savepoint {name}"))
                    .await?;
                Err(err)
            }
        }
    }

    async fn simple(&self, sql: &str) -> AppResult<()> {
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.client()?.batch_execute(sql).await?;
        Ok(())
    }

    /// Commits. On failure the connection is discarded (see the type's docs).
    pub async fn commit(&self) -> AppResult<()> {
        self.finish("commit").await
    }

    /// Rolls back. On failure the connection is discarded.
    pub async fn rollback(&self) -> AppResult<()> {
        self.finish("rollback").await
    }

    async fn finish(&self, sql: &str) -> AppResult<()> {
        if self.finished.load(Ordering::Acquire) {
            return Err(anyhow::anyhow!("transaction already finished").into());
        }
        self.simple(sql).await?;
        self.finished.store(true, Ordering::Release);
        Ok(())
    }
}

/// The parameter types of each statement text, learned once per process.
///
/// The unnamed statement needs its parameters' types up front (the Parse message carries them). The
/// first time a text is seen its types are asked of the server with a named statement that is
/// closed again right away, inside the same transaction (the Close goes out before anything else
/// on the connection, so it reaches the same server connection even behind a transaction-mode
/// pooler); from then on every run is a single round trip. Only texts whose types are all built in
/// are kept: built-in types have the same OID in every database, other types do not.
///
/// Every type deskgraph's schema uses is built in. A column of a user-defined type (an enum, a
/// domain, pgvector) would make tokio-postgres look the type up with a named statement it keeps on
/// the connection, which a transaction-mode pooler breaks: keep such types out of the schema, or
/// run with prepared statements behind a pooler that supports them.
async fn param_types(client: &Object, sql: &str) -> Result<Arc<[Type]>, tokio_postgres::Error> {
    static KNOWN: LazyLock<RwLock<HashMap<String, Arc<[Type]>>>> = LazyLock::new(Default::default);
    if let Some(types) = KNOWN.read().ok().and_then(|known| known.get(sql).cloned()) {
        return Ok(types);
    }
    let statement = client.prepare(sql).await?;
    let types: Arc<[Type]> = statement.params().into();
    drop(statement);
    if types.iter().all(|t| Type::from_oid(t.oid()).is_some())
        && let Ok(mut known) = KNOWN.write()
    {
        known.insert(sql.to_owned(), types.clone());
    }
    Ok(types)
}

impl Drop for TenantTx {
    fn drop(&mut self) {
        if self.finished.load(Ordering::Acquire) {
            return;
        }
        if let Some(client) = self.client.take() {
            // Detach from the pool; dropping the client closes the connection, and PostgreSQL rolls
            // back whatever it was doing.
            drop(Object::take(client));
            tracing::warn!("transaction dropped unfinished; its connection was discarded");
        }
    }
}

//! Test harness: one fresh PostgreSQL database per test, cloned from a template migrated once per
//! migration set, dropped when the test ends; and a real deskgraph server on a free local port.
//!
//! Needs a reachable PostgreSQL where `DESKGRAPH_TEST_ADMIN_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) can create databases and roles.

use std::str::FromStr;
use std::sync::Arc;

use deskgraph::app::{Server, build_state};
use deskgraph::authz::Role;
use deskgraph::config::{DbConfig, ServerConfig};
use deskgraph::db::Pool;
use deskgraph::db::{Access, Credentials, TenantContext, TenantTx, TxOptions, migrate};
use deskgraph::http::AppState;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

pub const TEST_SECRET: &str = "deskgraph-test-secret";
pub const APP_ROLE: &str = "deskgraph_app";
pub const APP_PASSWORD: &str = "deskgraph-test";
const TEMPLATE_LOCK: i64 = 0x6465_736b_7465_7374; // "desktest"

pub fn admin_base_url() -> String {
    std::env::var("DESKGRAPH_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn url_for(user: &str, password: Option<&str>, dbname: &str) -> String {
    let base = tokio_postgres::Config::from_str(&admin_base_url())
        .expect("DESKGRAPH_TEST_ADMIN_URL is a URL");
    let (host, port) = cluster_addr();
    let auth = match password {
        Some(p) => format!("{user}:{p}"),
        None => match base.get_password() {
            Some(p) if user == base.get_user().unwrap_or("postgres") => {
                format!("{user}:{}", String::from_utf8_lossy(p))
            }
            _ => user.to_owned(),
        },
    };
    format!("postgres://{auth}@{host}:{port}/{dbname}")
}

fn admin_user() -> String {
    tokio_postgres::Config::from_str(&admin_base_url())
        .ok()
        .and_then(|c| c.get_user().map(str::to_owned))
        .unwrap_or_else(|| "postgres".into())
}

/// Name of the template for the current migrations (content hash, so a changed migration gets a
/// fresh template and stale ones are never reused).
fn template_name() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("migrations dir")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut hash = Sha256::new();
    for f in files {
        hash.update(f.file_name().unwrap().to_string_lossy().as_bytes());
        hash.update(std::fs::read(&f).unwrap());
    }
    format!("deskgraph_tmpl_{}", &hex::encode(hash.finalize())[..16])
}

pub async fn admin_client(dbname: &str) -> tokio_postgres::Client {
    migrate::connect(&url_for(&admin_user(), None, dbname))
        .await
        .expect("connect as the test admin")
}

async fn template_exists(client: &tokio_postgres::Client, name: &str) -> bool {
    client
        .query_opt("select 1 from pg_database where datname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

async fn ensure_template(name: &str) {
    let client = admin_client("postgres").await;
    if template_exists(&client, name).await {
        return;
    }
    client
        .execute("select pg_advisory_lock($1)", &[&TEMPLATE_LOCK])
        .await
        .unwrap();
    if !template_exists(&client, name).await {
        // Templates of earlier migration sets are stale now: drop them (best effort; one still in use
        // by a run of an older checkout is left alone).
        let stale = client
            .query(
                "select datname from pg_database where datname like 'deskgraph\\_tmpl\\_%' and datname <> $1",
                &[&name],
            )
            .await
            .unwrap();
        for row in stale {
            let old: String = row.get(0);
            let _ = client
                .batch_execute(&format!("drop database if exists {old}"))
                .await;
        }
        let building = format!("{name}_building");
        client
            .batch_execute(&format!("drop database if exists {building} with (force)"))
            .await
            .unwrap();
        client
            .batch_execute(&format!("create database {building}"))
            .await
            .unwrap();
        {
            let mut db = admin_client(&building).await;
            migrate::migrate_client(&mut db, APP_ROLE, APP_PASSWORD)
                .await
                .expect("migrations apply");
        }
        // Renaming needs no other sessions on it; the migration connection may still be closing.
        for attempt in 0.. {
            match client
                .batch_execute(&format!("alter database {building} rename to {name}"))
                .await
            {
                Ok(()) => break,
                Err(e) if attempt < 50 => {
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot finish the template: {e}"),
            }
        }
    }
    client
        .execute("select pg_advisory_unlock($1)", &[&TEMPLATE_LOCK])
        .await
        .unwrap();
}

/// A fresh database for one test, dropped (with its connections) when the value drops.
pub struct TestDb {
    pub name: String,
    pub runtime_url: String,
    pub admin_url: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let template = template_name();
        ensure_template(&template).await;
        let name = format!("deskgraph_test_{}", Uuid::new_v4().simple());
        let client = admin_client("postgres").await;
        for attempt in 0.. {
            match client
                .batch_execute(&format!("create database {name} template {template}"))
                .await
            {
                Ok(()) => break,
                // "source database is being accessed by other users": a template connection closing.
                Err(e) if attempt < 50 => {
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot create the test database: {e}"),
            }
        }
        Self {
            runtime_url: url_for(APP_ROLE, Some(APP_PASSWORD), &name),
            admin_url: url_for(&admin_user(), None, &name),
            name,
        }
    }

    pub fn db_config(&self) -> DbConfig {
        DbConfig {
            database_url: self.runtime_url.clone().into(),
            database_listen_url: "".into(),
            database_admin_url: self.admin_url.clone().into(),
            app_role: APP_ROLE.into(),
            app_password: APP_PASSWORD.into(),
            pool_size: 8,
            statement_timeout_ms: 10_000,
            prepared_statements: true,
        }
    }

    /// A runtime-role pool on this database.
    pub fn runtime_pool(&self, size: usize) -> Pool {
        deskgraph::db::pool_for(&self.runtime_url, size).unwrap()
    }

    pub async fn admin(&self) -> tokio_postgres::Client {
        admin_client(&self.name).await
    }
}

/// Drops a database (and its connections) from a synchronous `Drop`: a thread with its own runtime
/// does the async work, so it also runs while a test unwinds.
pub fn drop_database_blocking(name: &str) {
    let name = name.to_owned();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = admin_client("postgres").await;
            let _ = client
                .batch_execute(&format!("drop database if exists {name} with (force)"))
                .await;
        });
    })
    .join();
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop_database_blocking(&self.name);
    }
}

pub fn server_config() -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        jwt_secret: TEST_SECRET.into(),
        jwt_issuer: String::new(),
        jwks_url: String::new(),
        jwt_audience: String::new(),
        invitations_bind_email: true,
        cors_origins: "https://desk.example".into(),
        max_body_bytes: 1_048_576,
        max_depth: 15,
        max_complexity: 5_000,
        // The catalogue compiled into the binary, as in production.
        persisted_dir: String::new(),
        analyst_cache_max_age_secs: 60,
        rate_limit_per_minute: 0,
        rate_limit_floor_per_minute: 10,
        instance_heartbeat_secs: 0,
        // Tests grant allowances explicitly (billing::allowance::grant_due), not on a timer.
        allowance_interval_secs: 0,
        live: deskgraph::config::LiveConfig::default(),
        shutdown: deskgraph::config::ShutdownConfig {
            shutdown_grace_secs: 5,
        },
    }
}

/// Who makes a request: a bearer token (JWT or API key) and the organization header.
#[derive(Clone, Debug)]
pub struct Caller {
    pub bearer: Option<String>,
    pub org: Option<Uuid>,
    /// The user's id, once known.
    pub user_id: Option<Uuid>,
    pub subject: String,
}

impl Caller {
    pub fn user(subject: &str) -> Self {
        let token = deskgraph::identity::auth::mint_token(
            TEST_SECRET,
            subject,
            Some(&format!("{subject}@people.example")),
            Some(subject),
            None,
            3600,
        )
        .unwrap();
        Self {
            bearer: Some(token),
            org: None,
            user_id: None,
            subject: subject.into(),
        }
    }

    pub fn key(secret: &str) -> Self {
        Self {
            bearer: Some(secret.into()),
            org: None,
            user_id: None,
            subject: String::new(),
        }
    }

    pub fn anonymous() -> Self {
        Self {
            bearer: None,
            org: None,
            user_id: None,
            subject: String::new(),
        }
    }

    pub fn in_org(mut self, org: Uuid) -> Self {
        self.org = Some(org);
        self
    }
}

/// A running server on its own database.
pub struct TestApp {
    pub db: TestDb,
    pub server: Option<Server>,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(server_config()).await
    }

    pub async fn spawn_with(cfg: ServerConfig) -> Self {
        Self::spawn_with_ai(cfg, deskgraph::ai::Ai::builtin()).await
    }

    /// A server whose AI pipeline is `ai` (workers are started by the test, when it wants them).
    pub async fn spawn_with_ai(cfg: ServerConfig, ai: Arc<deskgraph::ai::Ai>) -> Self {
        let db = TestDb::new().await;
        let db_cfg = db.db_config();
        Self::spawn_on(db, &db_cfg, cfg, ai).await
    }

    /// A server on `db` that connects as `db_cfg` says (through a pooler or a proxy, say).
    pub async fn spawn_on(
        db: TestDb,
        db_cfg: &DbConfig,
        cfg: ServerConfig,
        ai: Arc<deskgraph::ai::Ai>,
    ) -> Self {
        // reqwest is built without a TLS provider of its own: a client panics unless rustls has a
        // process default (`deskgraph::crypto`), even for plain HTTP.
        deskgraph::crypto::install();
        let state = build_state(db_cfg, &cfg, ai)
            .await
            .expect("server state builds");
        let server = Server::start(state, &cfg).await.expect("server starts");
        let base = format!("http://{}", server.addr);
        Self {
            db,
            server: Some(server),
            base,
            http: reqwest::Client::new(),
        }
    }

    pub fn state(&self) -> Arc<AppState> {
        self.server.as_ref().unwrap().state.clone()
    }

    /// POSTs a GraphQL request; returns status and JSON body.
    pub async fn post(&self, caller: &Caller, query: &str, variables: Value) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/graphql", self.base))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(b) = &caller.bearer {
            req = req.bearer_auth(b);
        }
        if let Some(org) = caller.org {
            req = req.header("x-org-id", org.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_no_internals(&text);
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }

    /// Runs an operation expected to succeed; returns `data`.
    pub async fn ok(&self, caller: &Caller, query: &str, variables: Value) -> Value {
        let (status, body) = self.post(caller, query, variables).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Runs an operation expected to fail; returns the first error's `extensions.code`.
    pub async fn err(&self, caller: &Caller, query: &str, variables: Value) -> String {
        let (_, body) = self.post(caller, query, variables).await;
        error_code(&body).unwrap_or_else(|| panic!("expected an error: {body}"))
    }

    /// Resolves (and creates on first sight) the caller's user id.
    pub async fn user_id(&self, caller: &Caller) -> Uuid {
        let mut anon = caller.clone();
        anon.org = None;
        let data = self
            .ok(&anon, "{ viewer { user { id } } }", json!({}))
            .await;
        data["viewer"]["user"]["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

pub fn error_code(body: &Value) -> Option<String> {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .map(str::to_owned)
}

/// No response may carry SQL, driver errors or stack traces.
pub fn assert_no_internals(text: &str) {
    let lower = text.to_lowercase();
    for needle in [
        "violates",
        "relation \"",
        "syntax error at",
        "sqlstate",
        "db error",
        "panicked",
        "stack backtrace",
        "tokio_postgres",
        "row-level security",
    ] {
        assert!(
            !lower.contains(needle),
            "response leaks internals ({needle}): {text}"
        );
    }
}

/// One organization with a member of every role, a workspace, a ticket with a comment, an analyst key
/// and an agent key.
#[derive(Clone, Debug)]
pub struct OrgFixture {
    pub id: Uuid,
    pub slug: String,
    pub owner: Caller,
    pub admin: Caller,
    pub agent: Caller,
    pub viewer: Caller,
    pub analyst_key: Caller,
    pub agent_key: Caller,
    pub agent_key_id: String,
    pub workspace: String,
    pub ticket: String,
    pub comment: String,
}

impl OrgFixture {
    pub fn member(&self, role: Role) -> &Caller {
        match role {
            Role::Owner => &self.owner,
            Role::Admin => &self.admin,
            Role::Agent => &self.agent,
            Role::Viewer => &self.viewer,
            Role::Analyst => &self.analyst_key,
        }
    }
}

pub async fn org_fixture(app: &TestApp, slug: &str) -> OrgFixture {
    let mut owner = Caller::user(&format!("{slug}-owner"));
    owner.user_id = Some(app.user_id(&owner).await);
    let data = app
        .ok(
            &owner,
            "mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) { id } }",
            json!({"i": {"name": format!("{slug} Inc"), "slug": slug}}),
        )
        .await;
    let id: Uuid = data["createOrganization"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let owner = owner.in_org(id);
    // Pro: room for the seats tests add (the Free plan's limit has tests of its own).
    app.ok(
        &owner,
        "mutation { changePlan(plan: \"pro\") { plan { id } } }",
        json!({}),
    )
    .await;
    let mut members = vec![];
    for role in ["ADMIN", "AGENT", "VIEWER"] {
        let mut c = Caller::user(&format!("{slug}-{}", role.to_lowercase()));
        let uid = app.user_id(&c).await;
        c.user_id = Some(uid);
        app.ok(
            &owner,
            "mutation($i: AddMemberInput!) { addMember(input: $i) { role } }",
            json!({"i": {"userId": uid, "role": role}}),
        )
        .await;
        members.push(c.in_org(id));
    }
    let (admin, agent, viewer) = (members[0].clone(), members[1].clone(), members[2].clone());
    let ws = app
        .ok(
            &admin,
            "mutation { createWorkspace(input: {name: \"Support\"}) { id } }",
            json!({}),
        )
        .await["createWorkspace"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ticket = app
        .ok(
            &agent,
            "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }",
            json!({"i": {"workspaceId": ws, "title": format!("{slug}: printer on fire"), "description": "secret of " , "requesterEmail": "c@customer.example"}}),
        )
        .await["createTicket"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let comment = app
        .ok(
            &agent,
            "mutation($i: AddCommentInput!) { addComment(input: $i) { id } }",
            json!({"i": {"ticketId": ticket, "body": format!("{slug} internal note"), "internal": true}}),
        )
        .await["addComment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = |role: &'static str| {
        let admin = admin.clone();
        async move {
            let d = app
                .ok(
                    &admin,
                    "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret apiKey { id } } }",
                    json!({"i": {"name": format!("{role} key"), "role": role}}),
                )
                .await;
            (
                d["createApiKey"]["secret"].as_str().unwrap().to_owned(),
                d["createApiKey"]["apiKey"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        }
    };
    let (analyst_secret, _) = key("ANALYST").await;
    let (agent_secret, agent_key_id) = key("AGENT").await;
    OrgFixture {
        id,
        slug: slug.into(),
        owner,
        admin,
        agent,
        viewer,
        analyst_key: Caller::key(&analyst_secret),
        agent_key: Caller::key(&agent_secret),
        agent_key_id,
        workspace: ws,
        ticket,
        comment,
    }
}

/// Opens a transaction as the runtime role with an explicit context (for raw-SQL tests).
pub async fn trusted_tx(
    pool: &Pool,
    org: Option<Uuid>,
    role: Option<Role>,
    access: Access,
) -> TenantTx {
    TenantTx::begin(
        pool,
        &Credentials::Trusted(TenantContext {
            org_id: org,
            user_id: None,
            api_key_id: None,
            role,
            system: false,
        }),
        TxOptions::new(access, 10_000),
    )
    .await
    .unwrap()
}

/// The text of a registered persisted operation (`schema/persisted/{name}.graphql`).
pub fn persisted(name: &str) -> &'static str {
    let path = format!(
        "{}/schema/persisted/{name}.graphql",
        env!("CARGO_MANIFEST_DIR")
    );
    Box::leak(
        std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("missing {path}"))
            .into_boxed_str(),
    )
}

/// A response read as is: status, headers and body text (already checked for internals).
pub struct RawResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl RawResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends a hand-built request and reads the whole response, asserting it leaks no internals.
pub async fn send_raw(req: reqwest::RequestBuilder) -> RawResponse {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    assert_no_internals(&text);
    RawResponse {
        status,
        headers,
        text,
    }
}

impl Caller {
    /// Adds this caller's `Authorization` and `x-org-id` headers to a hand-built request.
    pub fn apply(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if let Some(b) = &self.bearer {
            req = req.bearer_auth(b);
        }
        if let Some(org) = self.org {
            req = req.header("x-org-id", org.to_string());
        }
        req
    }
}

/// A connection URL for `user` on database `dbname` of the test server (trust auth: no password
/// unless given; the admin's own password is reused for the admin user).
/// `url` (a test database URL) pointing at `127.0.0.1:port` instead of the test cluster.
pub fn via_port(url: &str, port: u16) -> String {
    let (host, cluster_port) = cluster_addr();
    let from = format!("@{host}:{cluster_port}/");
    assert!(url.contains(&from), "{url} is not a test database URL");
    url.replacen(&from, &format!("@127.0.0.1:{port}/"), 1)
}

/// Host and port of the test cluster (`DESKGRAPH_TEST_ADMIN_URL`).
pub fn cluster_addr() -> (String, u16) {
    let base = tokio_postgres::Config::from_str(&admin_base_url())
        .expect("DESKGRAPH_TEST_ADMIN_URL is a URL");
    let host = match base.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    (host, base.get_ports().first().copied().unwrap_or(5432))
}

pub fn db_url(user: &str, password: Option<&str>, dbname: &str) -> String {
    url_for(user, password, dbname)
}

/// A connection URL for the test admin (superuser) on database `dbname`.
pub fn admin_db_url(dbname: &str) -> String {
    url_for(&admin_user(), None, dbname)
}

/// The SQLSTATE of a database error carried by an [`deskgraph::error::AppError`], if it carries one.
pub fn sql_state(err: &deskgraph::error::AppError) -> Option<tokio_postgres::error::SqlState> {
    match err {
        deskgraph::error::AppError::Internal(cause) => cause
            .downcast_ref::<tokio_postgres::Error>()
            .and_then(|e| e.code().cloned()),
        _ => None,
    }
}

/// A cluster-wide role made for one test (`{prefix}_{random}`), dropped when the value drops, after
/// dropping what it owns in the databases named with [`TestRole::owning_in`].
pub struct TestRole {
    pub name: String,
    dbs: Vec<String>,
}

impl TestRole {
    /// Creates the role with `attributes`, e.g. `"login nosuperuser nobypassrls"`.
    pub async fn create(prefix: &str, attributes: &str) -> Self {
        let name = format!("{prefix}_{}", &Uuid::new_v4().simple().to_string()[..12]);
        admin_client("postgres")
            .await
            .batch_execute(&format!("create role {name} {attributes}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create role {name}: {e}"));
        Self { name, dbs: vec![] }
    }

    /// Wraps a role something else created (e.g. `migrate`), so the test drops it.
    pub fn adopt(name: &str) -> Self {
        Self {
            name: name.into(),
            dbs: vec![],
        }
    }

    /// Remembers that the role may own objects or hold privileges in `db`.
    pub fn owning_in(mut self, db: &str) -> Self {
        self.dbs.push(db.into());
        self
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        let (name, dbs) = (self.name.clone(), self.dbs.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                for db in dbs {
                    // The database may already be gone; then so is everything the role had in it.
                    if let Ok(client) = migrate::connect(&url_for(&admin_user(), None, &db)).await {
                        let _ = client
                            .batch_execute(&format!("drop owned by {name} cascade"))
                            .await;
                    }
                }
                let client = admin_client("postgres").await;
                let _ = client
                    .batch_execute(&format!("drop role if exists {name}"))
                    .await;
            });
        })
        .join();
    }
}

impl TestApp {
    /// Another server instance on this test's database, with `cfg` (its own pool, port and live
    /// `LISTEN` connection); stop it with [`Server::stop`]. Its base URL is `http://{addr}`.
    pub async fn spawn_instance(&self, cfg: &ServerConfig) -> Server {
        let state = build_state(&self.db.db_config(), cfg, deskgraph::ai::Ai::builtin())
            .await
            .expect("second instance's state builds");
        Server::start(state, cfg)
            .await
            .expect("second instance starts")
    }
}

/// POSTs a GraphQL operation to the server at `base` and expects success; returns `data`.
pub async fn ok_at(base: &str, caller: &Caller, query: &str, variables: Value) -> Value {
    let req = caller.apply(
        reqwest::Client::new()
            .post(format!("{base}/graphql"))
            .json(&json!({"query": query, "variables": variables})),
    );
    let resp = send_raw(req).await;
    let body = resp.json();
    assert_eq!(resp.status, 200, "{body}");
    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    body["data"].clone()
}

/// A `BigInt` of a response (credit amounts): a JSON string of decimal digits, never a number.
pub fn big_int(value: &Value) -> Option<i64> {
    value.as_str()?.parse().ok()
}

/// Says that a test was skipped, and why, where it is seen: written to a duplicate of the stderr
/// descriptor, since the test harness captures eprintln! and io::stderr() of passing tests.
pub fn skip_visibly(test: &str, why: &str) {
    let reason = format!("SKIPPED {test}: {why}\n");
    use std::os::fd::AsFd as _;
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => {
            use std::io::Write as _;
            let _ = std::fs::File::from(fd).write_all(reason.as_bytes());
        }
        Err(_) => eprint!("{reason}"),
    }
}

/// Why the Node.js package in `dir` cannot run here, if it cannot: `node` missing or older than
/// `min_major`, or its `node_modules` missing and `npm ci` (the versions of package-lock.json,
/// nothing newer) failing — no npm, or no registry to install from.
pub async fn node_package_unavailable(dir: &std::path::Path, min_major: u32) -> Option<String> {
    use tokio::process::Command;
    match Command::new("node").arg("--version").output().await {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let major = version
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|m| m.parse::<u32>().ok());
            if major.is_none_or(|m| m < min_major) {
                return Some(format!(
                    "Node.js {version} is older than {min_major}, which {} needs",
                    dir.display()
                ));
            }
        }
        _ => {
            return Some(format!(
                "`node` is not available (Node.js {min_major}+ and npm are needed)"
            ));
        }
    }
    if !dir.join("node_modules").is_dir() {
        let out = match Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir)
            .output()
            .await
        {
            Ok(out) => out,
            Err(err) => return Some(format!("`npm` is not available ({err})")),
        };
        if !out.status.success() {
            return Some(format!(
                "npm ci in {} failed:\n{}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    None
}

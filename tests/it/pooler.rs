//! Behind a transaction-mode pooler (PgBouncer `pool_mode = transaction`, the mode Supabase's and
//! Neon's poolers use for application traffic): a PgBouncer of the test's own multiplexes the
//! server's pooled connections onto fewer server connections, so consecutive transactions of one
//! client connection land on different server connections. Every request must still succeed.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use deskgraph::ai::Ai;
use serde_json::{Value, json};

use crate::common::{
    APP_PASSWORD, APP_ROLE, TestApp, TestDb, cluster_addr, error_code, org_fixture, send_raw,
    server_config, skip_visibly, via_port,
};
use crate::queue::{fast_workers, wait_until};

/// Server connections PgBouncer may open per (database, user): fewer than the API's pool, so
/// transactions of different API connections share server connections.
const SERVER_CONNECTIONS: usize = 3;

/// A PgBouncer process of the test's own, on a free port, in front of the test cluster; killed and
/// its folder removed on drop.
pub struct PgBouncer {
    pub port: u16,
    child: Child,
    dir: PathBuf,
}

impl PgBouncer {
    /// Starts one in `pool_mode`, or says why it cannot (no `pgbouncer` installed).
    pub fn start(pool_mode: &str) -> Result<Self, String> {
        let bin = [
            "/usr/sbin/pgbouncer",
            "/usr/bin/pgbouncer",
            "/usr/local/bin/pgbouncer",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or("pgbouncer is not installed (apt-get install pgbouncer)")?;
        let dir =
            std::env::temp_dir().join(format!("deskgraph-pgbouncer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (host, cluster_port) = cluster_addr();
        let ini = format!(
            "[databases]\n* = host={host} port={cluster_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {auth}\n\
             pool_mode = {pool_mode}\ndefault_pool_size = {SERVER_CONNECTIONS}\nmax_client_conn = 200\n\
             server_reset_query =\nignore_startup_parameters = extra_float_digits\n",
            auth = dir.join("users.txt").display(),
        );
        let users = format!("\"{APP_ROLE}\" \"{APP_PASSWORD}\"\n\"postgres\" \"\"\n");
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        std::fs::write(dir.join("users.txt"), users).unwrap();
        let log = std::fs::File::create(dir.join("pgbouncer.log")).unwrap();
        let mut cmd = Command::new(bin);
        // PgBouncer refuses to run as root; as root, it drops to the postgres system user, which must
        // be able to read its files.
        if deskgraph::demo::cluster::running_as_root() {
            for path in [
                dir.clone(),
                dir.join("pgbouncer.ini"),
                dir.join("users.txt"),
            ] {
                let mode = if path.is_dir() { 0o755 } else { 0o644 };
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            cmd.args(["-u", "postgres"]);
        }
        let child = cmd
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let bouncer = Self { port, child, dir };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                panic!("pgbouncer did not listen on {port}:\n{}", bouncer.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(bouncer)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const LIST: &str = "{ tickets(first: 20) { totalCount edges { node { id title status
    workspace { name } assignee { name } commentCount } } } }";
const CREATE: &str = "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id number } }";
const COMMENT: &str =
    "mutation($i: AddCommentInput!) { addComment(input: $i) { id body ticketId } }";
const TICKET: &str = "query($id: ID!) { ticket(id: $id) { id title comments(first: 5) { edges {
    node { id body author { name } } } } analysis { status } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_mode_pooler_serves_a_mixed_load_without_one_failure() {
    let bouncer = match PgBouncer::start("transaction") {
        Ok(b) => b,
        Err(why) => return skip_visibly("pooler", &why),
    };
    let db = TestDb::new().await;
    let mut db_cfg = db.db_config();
    // Requests and job claims go through the pooler; LISTEN needs a session, so it goes direct.
    db_cfg.database_url = via_port(&db.runtime_url, bouncer.port).into();
    db_cfg.database_listen_url = db.runtime_url.clone().into();
    db_cfg.pool_size = 8;
    // PgBouncer 1.18 (Debian 12's) keeps no named prepared statements in transaction mode.
    db_cfg.prepared_statements = false;
    let app = TestApp::spawn_on(db, &db_cfg, server_config(), Ai::builtin()).await;
    let workers = deskgraph::app::start_workers(&app.state(), &db_cfg, &fast_workers(2, 5))
        .unwrap()
        .unwrap();
    let org = org_fixture(&app, "pooled").await;
    let app = Arc::new(app);

    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let requests = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for client in 0..8 {
        let (app, org, failures, requests) =
            (app.clone(), org.clone(), failures.clone(), requests.clone());
        clients.push(tokio::spawn(async move {
            for i in 0..40 {
                let (query, variables) = match (client + i) % 4 {
                    0 => (
                        CREATE,
                        json!({"i": {"workspaceId": org.workspace, "title": format!("pooled {client}-{i}"),
                                     "description": "Checkout page times out"}}),
                    ),
                    1 => (COMMENT, json!({"i": {"ticketId": org.ticket, "body": format!("note {client}-{i}")}})),
                    2 => (TICKET, json!({"id": org.ticket})),
                    _ => (LIST, json!({})),
                };
                let req = org.agent.apply(
                    app.http
                        .post(format!("{}/graphql", app.base))
                        .json(&json!({"query": query, "variables": variables})),
                );
                let resp = send_raw(req).await;
                requests.fetch_add(1, Ordering::Relaxed);
                let body: Value = resp.json();
                if resp.status != 200 || body.get("errors").is_some() {
                    failures.lock().unwrap().push(format!(
                        "{} {:?}: {body}",
                        resp.status,
                        error_code(&body)
                    ));
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let api_connections = app.state().engine.pool.status().size;
    eprintln!(
        "pooler: {} requests, {} failed; the API's pool held {api_connections} connections, PgBouncer \
         at most {SERVER_CONNECTIONS} server connections",
        requests.load(Ordering::Relaxed),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failed requests, e.g. {:#?}\npgbouncer log:\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        bouncer.log()
    );
    assert!(
        api_connections > SERVER_CONNECTIONS,
        "the load must have used more API connections ({api_connections}) than server connections"
    );

    // Job workers claim through the pooler (and hear wake-ups over the direct LISTEN): a new ticket
    // gets its analysis.
    let id = app
        .ok(
            &org.agent,
            CREATE,
            json!({"i": {"workspaceId": org.workspace, "title": "pooled analysis",
        "description": "Invoice charged twice"}}),
        )
        .await["createTicket"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_until(
        "the analysis through the pooler",
        Duration::from_secs(30),
        || {
            let (app, agent, id) = (app.clone(), org.agent.clone(), id.clone());
            async move {
                app.ok(&agent, TICKET, json!({"id": id})).await["ticket"]["analysis"]["status"]
                    == "DONE"
            }
        },
    )
    .await;
    workers.shutdown(Duration::from_secs(5)).await;
}

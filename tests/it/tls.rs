//! TLS to PostgreSQL (`db::tls`), over real handshakes: `prefer`/`require`/`disable` against the test
//! server (which has `ssl = on` with a self-signed certificate), and `verify-ca`/`verify-full`,
//! channel binding and client certificates against a private cluster whose certificate a CA made
//! here signs. The private clusters need the PostgreSQL server binaries; without them those tests
//! say so and pass.

mod cluster;

use std::process::Command;

use deskgraph::app::{Server, build_state};
use deskgraph::config::DbConfig;
use deskgraph::db::migrate;
use deskgraph::db::tls::{Target, error_chain};
use serde_json::json;

use self::cluster::{CERT_USER, Cluster, Pki, SCRAM_PASSWORD, SCRAM_USER, TempDir};
use crate::common::{self, APP_PASSWORD, APP_ROLE, Caller};

/// The test server's URL for the `postgres` database with `params` appended.
fn local_url(params: &str) -> String {
    format!("{}?{params}", common::admin_db_url("postgres"))
}

fn target(url: &str) -> Target {
    Target::from_url(url, "TEST_URL").unwrap_or_else(|err| panic!("{err:#}"))
}

/// `host:port` of a target, as its errors name it.
fn server_of(target: &Target) -> String {
    let described = target.describe();
    described
        .split(" (")
        .next()
        .unwrap_or(&described)
        .to_owned()
}

/// Connects and asks the server whether this session is encrypted.
async fn session_uses_tls(url: &str) -> bool {
    let target = target(url);
    let (client, connection) = target
        .connect()
        .await
        .unwrap_or_else(|err| panic!("{}: {}", target.describe(), error_chain(&err)));
    tokio::spawn(connection);
    client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The full error of a connection expected to fail.
async fn connect_error(url: &str) -> String {
    match target(url).connect().await {
        Ok(_) => panic!("{url} connected"),
        Err(err) => error_chain(&err),
    }
}

/// The test server must offer TLS for the `prefer`/`require` tests to mean anything.
async fn assert_local_server_has_ssl() {
    let (client, connection) = target(&local_url("sslmode=disable"))
        .connect()
        .await
        .unwrap();
    tokio::spawn(connection);
    let ssl: String = client.query_one("show ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "the test server (DESKGRAPH_TEST_ADMIN_URL) needs ssl = on"
    );
}

#[tokio::test]
async fn require_encrypts_without_checking_a_self_signed_certificate() {
    assert_local_server_has_ssl().await;
    assert!(session_uses_tls(&local_url("sslmode=require")).await);
}

#[tokio::test]
async fn prefer_is_the_default_and_uses_tls_when_the_server_offers_it() {
    assert_local_server_has_ssl().await;
    assert!(session_uses_tls(&local_url("sslmode=prefer")).await);
    assert!(session_uses_tls(&common::admin_db_url("postgres")).await);
}

#[tokio::test]
async fn disable_never_uses_tls() {
    assert_local_server_has_ssl().await;
    assert!(!session_uses_tls(&local_url("sslmode=disable")).await);
}

#[tokio::test]
async fn a_root_certificate_makes_require_and_verify_ca_refuse_a_certificate_it_did_not_sign() {
    assert_local_server_has_ssl().await;
    let dir = TempDir::new();
    let pki = Pki::create(dir.path());
    for mode in ["require", "verify-ca"] {
        let url = local_url(&format!(
            "sslmode={mode}&sslrootcert={}",
            pki.ca_cert.display()
        ));
        let err = connect_error(&url).await;
        let server = server_of(&target(&url));
        assert!(err.contains(&format!("{server} (sslmode={mode})")), "{err}");
        assert!(
            err.contains(&format!(
                "not issued by a CA in sslrootcert \"{}\"",
                pki.ca_cert.display()
            )),
            "{err}"
        );
    }
}

#[test]
fn a_bad_sslmode_stops_serve_at_start_up_naming_the_setting_without_the_password() {
    let out = Command::new(env!("CARGO_BIN_EXE_deskgraph"))
        .arg("serve")
        .env(
            "DATABASE_URL",
            "postgres://deskgraph_app:hunter2-secret@127.0.0.1:1/deskgraph?sslmode=verify-fullest",
        )
        .env_remove("DATABASE_ADMIN_URL")
        .env_remove("DATABASE_LISTEN_URL")
        .env("DESKGRAPH_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DATABASE_URL (postgres://deskgraph_app:***@127.0.0.1:1/deskgraph"),
        "{stderr}"
    );
    assert!(
        stderr.contains("invalid sslmode \"verify-fullest\""),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[tokio::test]
async fn verify_full_connects_when_the_certificate_names_the_host() {
    let dir = TempDir::new();
    let pki = Pki::create(dir.path());
    let Some(cluster) = Cluster::start(dir.path(), Some(&pki)) else {
        return;
    };
    // The certificate names both: a DNS name and an IP address.
    for host in ["localhost", "127.0.0.1"] {
        let url = format!(
            "postgres://postgres@{host}:{}/postgres?sslmode=verify-full&sslrootcert={}",
            cluster.port,
            pki.ca_cert.display()
        );
        assert!(session_uses_tls(&url).await, "{host}");
    }
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_for_another_name_and_names_both() {
    let dir = TempDir::new();
    let pki = Pki::create(dir.path());
    let Some(cluster) = Cluster::start(dir.path(), Some(&pki)) else {
        return;
    };
    // `host` is the name checked; `hostaddr` is where the connection goes.
    let url = format!(
        "host=wrong.example hostaddr=127.0.0.1 port={} user=postgres dbname=postgres \
         sslmode=verify-full sslrootcert={}",
        cluster.port,
        pki.ca_cert.display()
    );
    let err = connect_error(&url).await;
    assert!(
        err.contains(&format!(
            "wrong.example:{} (sslmode=verify-full)",
            cluster.port
        )),
        "{err}"
    );
    assert!(
        err.contains("certificate not valid for name \"wrong.example\""),
        "{err}"
    );
    assert!(err.contains("localhost"), "{err}");
    // The pool's connections say the same.
    let pool = deskgraph::db::pool_for(&url, 1).unwrap();
    let err = format!("{:#}", anyhow::Error::from(pool.get().await.unwrap_err()));
    assert!(
        err.contains("certificate not valid for name \"wrong.example\""),
        "{err}"
    );
}

#[tokio::test]
async fn verify_ca_accepts_the_right_chain_under_another_name() {
    let dir = TempDir::new();
    let pki = Pki::create(dir.path());
    let Some(cluster) = Cluster::start(dir.path(), Some(&pki)) else {
        return;
    };
    let url = format!(
        "postgres://postgres@wrong.example:{}/postgres?hostaddr=127.0.0.1&sslmode=verify-ca\
         &sslrootcert={}",
        cluster.port,
        pki.ca_cert.display()
    );
    assert!(session_uses_tls(&url).await);
}

#[tokio::test]
async fn scram_channel_binding_is_required_and_given_over_tls() {
    let dir = TempDir::new();
    let pki = Pki::create(dir.path());
    let Some(cluster) = Cluster::start(dir.path(), Some(&pki)) else {
        return;
    };
    // `channel_binding=require` fails unless the TLS stream hands tokio-postgres the server
    // certificate's hash (SCRAM-SHA-256-PLUS).
    let url = format!(
        "postgres://{SCRAM_USER}:{SCRAM_PASSWORD}@localhost:{}/postgres?sslmode=verify-full\
         &sslrootcert={}&channel_binding=require",
        cluster.port,
        pki.ca_cert.display()
    );
    assert!(session_uses_tls(&url).await);
}

#[tokio::test]
async fn a_client_certificate_from_sslcert_and_sslkey_authenticates() {
    let dir = TempDir::new();
    let pki = Pki::create(dir.path());
    let Some(cluster) = Cluster::start(dir.path(), Some(&pki)) else {
        return;
    };
    let base = format!(
        "postgres://{CERT_USER}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        cluster.port,
        pki.ca_cert.display()
    );
    let with_cert = format!(
        "{base}&sslcert={}&sslkey={}",
        pki.client_cert.display(),
        pki.client_key.display()
    );
    assert!(session_uses_tls(&with_cert).await);
    let err = connect_error(&base).await;
    assert!(err.contains("requires a valid client certificate"), "{err}");
}

#[tokio::test]
async fn prefer_falls_back_to_plain_text_when_the_server_has_no_tls() {
    let dir = TempDir::new();
    let Some(cluster) = Cluster::start(dir.path(), None) else {
        return;
    };
    let url = |mode: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode={mode}",
            cluster.port
        )
    };
    assert!(!session_uses_tls(&url("prefer")).await);
    let err = connect_error(&url("require")).await;
    assert!(err.contains("server does not support TLS"), "{err}");
}

#[tokio::test]
async fn migrations_and_graphql_run_over_verify_full() {
    let dir = TempDir::new();
    let pki = Pki::create(dir.path());
    let Some(cluster) = Cluster::start(dir.path(), Some(&pki)) else {
        return;
    };
    let url = |user: &str| {
        format!(
            "postgres://{user}@localhost:{}/deskgraph?sslmode=verify-full&sslrootcert={}",
            cluster.port,
            pki.ca_cert.display()
        )
    };
    let db = DbConfig {
        database_url: url(&format!("{APP_ROLE}:{APP_PASSWORD}")).into(),
        database_listen_url: "".into(),
        database_admin_url: url("postgres").into(),
        app_role: APP_ROLE.into(),
        app_password: APP_PASSWORD.into(),
        pool_size: 4,
        statement_timeout_ms: 10_000,
        prepared_statements: true,
    };
    let report = migrate::run(&db).await.unwrap_or_else(|e| panic!("{e:#}"));
    assert!(report.created_database && report.created_role);
    assert!(!report.applied.is_empty());

    let cfg = common::server_config();
    let state = build_state(&db, &cfg, deskgraph::ai::Ai::builtin())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let server = Server::start(state, &cfg).await.unwrap();
    let data = common::ok_at(
        &format!("http://{}", server.addr),
        &Caller::user("tls-e2e"),
        "{ viewer { user { id } } }",
        json!({}),
    )
    .await;
    assert!(data["viewer"]["user"]["id"].is_string(), "{data}");

    // Every session of the runtime role, the live LISTEN connection included, is encrypted.
    let admin = migrate::connect(db.database_admin_url.expose())
        .await
        .unwrap();
    let row = admin
        .query_one(
            "select count(*), count(*) filter (where s.ssl),
                    count(*) filter (where a.application_name = 'deskgraph-live' and s.ssl)
             from pg_stat_activity a join pg_stat_ssl s using (pid)
             where a.usename = $1",
            &[&APP_ROLE],
        )
        .await
        .unwrap();
    let (sessions, encrypted, live): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(sessions >= 2, "{sessions} sessions");
    assert_eq!(encrypted, sessions);
    assert_eq!(live, 1);
    server.stop().await.unwrap();
}

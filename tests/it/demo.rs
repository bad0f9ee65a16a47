//! The demo's sample data: seeded through the runtime role, and seeding again reuses what exists —
//! also after people changed it. And where the demo runs: the one database its URL names, or an
//! error that says which server refused it or where nothing listens — never a stand-in it was not
//! asked for.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use deskgraph::authz::Role;
use deskgraph::db::Access;
use deskgraph::identity::repo;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{APP_PASSWORD, APP_ROLE, TestDb, trusted_tx};

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.admin().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn seeding_twice_reuses_the_sample_data() {
    let db = TestDb::new().await;
    let pool = db.runtime_pool(2);
    let first = deskgraph::demo::seed(&pool).await.unwrap();
    assert!(first.created);
    assert_eq!(count(&db, "select count(*) from tickets").await, 50);
    assert_eq!(count(&db, "select count(*) from organizations").await, 2);
    assert_eq!(first.analyst_keys.len(), 2);
    let roles: Vec<Role> = first
        .members
        .iter()
        .flat_map(|m| m.memberships.iter().map(|(_, _, r)| *r))
        .collect();
    for role in [Role::Owner, Role::Admin, Role::Agent, Role::Viewer] {
        assert!(roles.contains(&role), "no seeded {role}");
    }

    let again = deskgraph::demo::seed(&pool).await.unwrap();
    assert!(!again.created);
    assert!(again.analyst_keys.is_empty());
    assert_eq!(again.orgs, first.orgs);
    assert_eq!(count(&db, "select count(*) from tickets").await, 50);
    assert_eq!(count(&db, "select count(*) from api_keys").await, 2);
}

#[tokio::test]
async fn seeding_again_after_the_owner_left_leaves_the_organization_alone() {
    let db = TestDb::new().await;
    let pool = db.runtime_pool(2);
    let seeded = deskgraph::demo::seed(&pool).await.unwrap();
    let acme = seeded.orgs["acme"];
    let member = |subject: &str| {
        seeded
            .members
            .iter()
            .find(|m| m.subject == subject)
            .unwrap()
            .user_id
    };
    let owner = seeded
        .members
        .iter()
        .find(|m| {
            m.memberships
                .iter()
                .any(|(slug, _, r)| slug == "acme" && *r == Role::Owner)
        })
        .unwrap()
        .user_id;
    let admin = seeded
        .members
        .iter()
        .find(|m| {
            m.memberships
                .iter()
                .any(|(slug, _, r)| slug == "acme" && *r == Role::Admin)
        })
        .unwrap()
        .subject
        .clone();
    // The owner hands the organization over and leaves.
    let tx = trusted_tx(&pool, Some(acme), Some(Role::Owner), Access::ReadWrite).await;
    repo::update_member_role(&tx, member(&admin), Role::Owner)
        .await
        .unwrap();
    repo::delete_member(&tx, owner).await.unwrap();
    tx.commit().await.unwrap();

    let again = deskgraph::demo::seed(&pool).await.unwrap();
    assert!(!again.orgs.contains_key("acme"));
    assert_eq!(again.orgs.get("globex"), seeded.orgs.get("globex"));
    assert_eq!(count(&db, "select count(*) from organizations").await, 2);
    assert_eq!(count(&db, "select count(*) from tickets").await, 50);
}

/// A folder for one demo run, removed when the test ends.
struct DemoDir(PathBuf);

impl DemoDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("deskgraph-demo-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `deskgraph demo` with only the settings a test gives (and a folder of its own).
fn demo(dir: &DemoDir) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_deskgraph"));
    cmd.arg("demo");
    for var in [
        "DATABASE_URL",
        "DATABASE_ADMIN_URL",
        "DATABASE_LISTEN_URL",
        "DESKGRAPH_APP_ROLE",
        "DESKGRAPH_APP_PASSWORD",
        "DESKGRAPH_JWT_SECRET",
        "OPENAI_API_KEY",
        "QDRANT_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("DESKGRAPH_DEMO_DIR", dir.path())
        .env("DESKGRAPH_LISTEN", "127.0.0.1:0")
        .env("DESKGRAPH_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

/// Runs a demo expected to stop before serving; returns its stderr.
async fn demo_error(dir: &DemoDir, env: &[(&str, &str)]) -> String {
    let mut cmd = demo(dir);
    cmd.envs(env.iter().copied());
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the demo stops within a minute")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains("private"), "{stdout}");
    assert!(!stderr.contains("private cluster in"), "{stderr}");
    assert!(
        !dir.path().join("pgdata").exists(),
        "no private cluster was made"
    );
    stderr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL server as far as the wire protocol goes: it turns TLS down, asks every client for
/// a cleartext password, and refuses whatever comes with `28P01 invalid_password`, as a server with
/// `password` (or `scram-sha-256`) authentication in pg_hba.conf refuses a wrong one. (The test
/// cluster trusts 127.0.0.1, so it cannot show a refusal.) Returns its port.
async fn server_that_wants_a_password() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(refuse_password(stream));
        }
    });
    port
}

async fn refuse_password(mut stream: TcpStream) -> std::io::Result<()> {
    const SSL_REQUEST: i32 = 80_877_103;
    const GSSENC_REQUEST: i32 = 80_877_104;
    // Startup: length, then the protocol version (or a TLS/GSS request, answered "no").
    loop {
        let len = stream.read_i32().await?;
        let code = stream.read_i32().await?;
        let mut rest = vec![0; usize::try_from(len - 8).unwrap()];
        stream.read_exact(&mut rest).await?;
        if code == SSL_REQUEST || code == GSSENC_REQUEST {
            stream.write_all(b"N").await?;
            continue;
        }
        break;
    }
    // AuthenticationCleartextPassword.
    stream.write_all(b"R").await?;
    stream.write_i32(8).await?;
    stream.write_i32(3).await?;
    // The client's PasswordMessage (a client without a password hangs up instead).
    let tag = stream.read_u8().await?;
    assert_eq!(tag, b'p');
    let len = stream.read_i32().await?;
    let mut password = vec![0; usize::try_from(len - 4).unwrap()];
    stream.read_exact(&mut password).await?;
    // ErrorResponse: severity, code, message.
    let mut fields = Vec::new();
    for (kind, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "28P01"),
        (b'M', "password authentication failed for user \"postgres\""),
    ] {
        fields.push(kind);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    stream.write_all(b"E").await?;
    stream
        .write_i32(i32::try_from(fields.len() + 4).unwrap())
        .await?;
    stream.write_all(&fields).await?;
    stream.flush().await
}

#[tokio::test]
async fn demo_at_a_server_that_wants_a_password_says_so_and_starts_no_private_cluster() {
    let port = server_that_wants_a_password().await;
    for (case, login) in [
        ("no password", "postgres"),
        ("wrong password", "postgres:wrong"),
    ] {
        let dir = DemoDir::new();
        let url = format!("postgres://{login}@127.0.0.1:{port}/deskgraph");
        let stderr = demo_error(&dir, &[("DATABASE_ADMIN_URL", &url)]).await;
        assert!(
            stderr.contains(&format!(
                "authentication failed for user \"postgres\" at 127.0.0.1:{port}"
            )),
            "{case}: {stderr}"
        );
        assert!(
            stderr.contains("set DATABASE_ADMIN_URL with a password"),
            "{case}: {stderr}"
        );
        assert!(
            !stderr.contains("wrong"),
            "{case}: no password shown: {stderr}"
        );
    }
}

#[tokio::test]
async fn the_probe_tells_a_refused_login_from_a_port_where_nothing_listens() {
    use deskgraph::db::tls::Target;
    use deskgraph::demo::database::{Probe, probe};

    let port = server_that_wants_a_password().await;
    let refused = Target::from_url(
        &format!("postgres://postgres:wrong@127.0.0.1:{port}/deskgraph"),
        "TEST",
    )
    .unwrap();
    let err = probe(&refused).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("authentication failed"),
        "{err:#}"
    );

    let closed = free_port();
    let nothing =
        Target::from_url(&format!("postgres://postgres@127.0.0.1:{closed}/x"), "TEST").unwrap();
    assert!(matches!(
        probe(&nothing).await.unwrap(),
        Probe::NothingListens(_)
    ));

    let answers = Target::from_url(&crate::common::admin_db_url("postgres"), "TEST").unwrap();
    assert!(matches!(probe(&answers).await.unwrap(), Probe::Answered));
}

#[tokio::test]
async fn demo_at_a_port_where_nothing_listens_names_it_and_the_role_and_starts_no_cluster() {
    let dir = DemoDir::new();
    let port = free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/deskgraph");
    let stderr = demo_error(&dir, &[("DATABASE_ADMIN_URL", &url)]).await;
    assert!(
        stderr.contains(&format!(
            "could not connect to PostgreSQL at 127.0.0.1:{port} (sslmode=prefer) as role \"postgres\""
        )),
        "{stderr}"
    );
    assert!(stderr.contains("nothing listens there"), "{stderr}");
}

#[tokio::test]
async fn demo_refuses_a_database_url_that_names_another_database_than_the_admin_url() {
    let dir = DemoDir::new();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let admin_db = format!("deskgraph_demo_admin_{suffix}");
    let admin = crate::common::admin_db_url(&admin_db);
    let other = format!("postgres://{APP_ROLE}@127.0.0.1:5432/deskgraph_demo_other_{suffix}");
    let stderr = demo_error(
        &dir,
        &[("DATABASE_ADMIN_URL", &admin), ("DATABASE_URL", &other)],
    )
    .await;
    assert!(
        stderr.contains("name different servers or databases"),
        "{stderr}"
    );
    assert!(stderr.contains(&admin_db), "{stderr}");
    assert!(stderr.contains("unset DATABASE_URL"), "{stderr}");
    // The same database as another role than the one the demo creates: refused too.
    let at = admin.find('@').unwrap();
    let as_someone = format!("postgres://someone{}", &admin[at..]);
    let stderr = demo_error(
        &dir,
        &[
            ("DATABASE_ADMIN_URL", &admin),
            ("DATABASE_URL", &as_someone),
        ],
    )
    .await;
    assert!(
        stderr.contains("DATABASE_URL logs in as \"someone\""),
        "{stderr}"
    );
    // Refused before anything was done: the admin URL's database was not created.
    let exists = crate::common::admin_client("postgres")
        .await
        .query_opt("select 1 from pg_database where datname = $1", &[&admin_db])
        .await
        .unwrap();
    assert!(exists.is_none());
}

/// What the first-run report was about: the admin URL pointed at one database, the runtime URL
/// (left at its default) at another, and the demo served the other's data. Now the runtime
/// connection follows the admin URL.
#[tokio::test]
async fn demo_migrates_seeds_and_serves_the_database_its_admin_url_names() {
    let db = TestDb::new().await;
    let dir = DemoDir::new();
    let mut child = demo(&dir)
        .env("DATABASE_ADMIN_URL", &db.admin_url)
        .env("DESKGRAPH_APP_ROLE", APP_ROLE)
        .env("DESKGRAPH_APP_PASSWORD", APP_PASSWORD)
        .env("DESKGRAPH_WORKERS", "1")
        .env("DESKGRAPH_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drained as it comes, so that the demo never waits on a full pipe.
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let served = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if let Some(at) = line.find("GraphiQL: http://") {
                return Some(line[at + "GraphiQL: http://".len()..].to_owned());
            }
        }
        None
    })
    .await
    .unwrap_or_default();
    let Some(graphiql) = served else {
        let _ = child.kill().await;
        panic!("the demo did not serve:\n{printed}\n{}", log.await.unwrap());
    };
    assert!(
        printed.contains(&format!(
            "The demo runs on PostgreSQL at {} — database {:?}",
            deskgraph::db::tls::Target::from_url(&db.admin_url, "TEST")
                .unwrap()
                .describe(),
            db.name
        )),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("served as {APP_ROLE:?}")),
        "{printed}"
    );
    // It seeded that database, and serves it.
    assert_eq!(count(&db, "select count(*) from organizations").await, 2);
    assert_eq!(count(&db, "select count(*) from tickets").await, 50);
    let addr = graphiql.trim_end_matches("/graphql");
    deskgraph::crypto::install();
    let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    child.kill().await.unwrap();
    // Its log (not a terminal here) has no colour codes, and no NOTICEs of idempotent DDL.
    let log = log.await.unwrap();
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log}");
    assert!(!log.contains("NOTICE"), "{log}");
}

//! The `deskgraph` binary's commands, run as a user would run them.

use std::process::Command;

use crate::common::{TEST_SECRET, TestDb};

fn deskgraph() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deskgraph"));
    // Start from a clean slate: only what each test sets.
    for var in [
        "DATABASE_URL",
        "DATABASE_ADMIN_URL",
        "DESKGRAPH_JWT_SECRET",
        "DESKGRAPH_LISTEN",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("DESKGRAPH_LOG", "warn");
    cmd
}

#[test]
fn schema_prints_the_committed_sdl() {
    let out = deskgraph().arg("schema").output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/schema.graphql"
    ))
    .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), committed);
}

#[tokio::test]
async fn token_mints_a_jwt_the_server_accepts() {
    let out = deskgraph()
        .args([
            "token",
            "--sub",
            "user_2abc",
            "--email",
            "ann@example.com",
            "--ttl",
            "60",
        ])
        .env("DESKGRAPH_JWT_SECRET", TEST_SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let verifier = deskgraph::identity::auth::JwtVerifier::new(TEST_SECRET, "", "");
    let claims = verifier.verify(&token).await.unwrap();
    assert_eq!(claims.sub, "user_2abc");
    assert_eq!(claims.email.as_deref(), Some("ann@example.com"));
}

/// A folder removed when the test ends.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("deskgraph-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn token_without_a_secret_signs_with_the_demos_or_says_where_it_looked() {
    let demo_dir = Scratch::new();
    let token = |dir: &std::path::Path| {
        deskgraph()
            .args(["token", "--sub", "user_2abc"])
            .env("DESKGRAPH_DEMO_DIR", dir)
            .output()
            .unwrap()
    };
    // No secret anywhere: an error naming both places.
    let out = token(&demo_dir.0);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DESKGRAPH_JWT_SECRET"), "{stderr}");
    let secret_file = demo_dir.0.join("jwt-secret");
    assert!(stderr.contains(secret_file.to_str().unwrap()), "{stderr}");

    // The demo's secret (as `deskgraph demo` leaves it in its folder).
    std::fs::write(&secret_file, format!("{TEST_SECRET}\n")).unwrap();
    let out = token(&demo_dir.0);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let verifier = deskgraph::identity::auth::JwtVerifier::new(TEST_SECRET, "", "");
    assert_eq!(verifier.verify(&token).await.unwrap().sub, "user_2abc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("demo's secret"), "{stderr}");

    // DESKGRAPH_JWT_SECRET, when set, wins over the demo's.
    let out = deskgraph()
        .args(["token", "--sub", "user_2abc"])
        .env("DESKGRAPH_DEMO_DIR", &demo_dir.0)
        .env("DESKGRAPH_JWT_SECRET", "another-secret")
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let verifier = deskgraph::identity::auth::JwtVerifier::new("another-secret", "", "");
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn serve_with_a_runtime_url_where_nothing_listens_names_the_server_and_role() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = deskgraph()
        .arg("serve")
        .env(
            "DATABASE_URL",
            format!("postgres://deskgraph_app@127.0.0.1:{port}/deskgraph"),
        )
        .env("DESKGRAPH_JWT_SECRET", TEST_SECRET)
        .env("DESKGRAPH_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "could not connect to PostgreSQL at 127.0.0.1:{port} (sslmode=prefer) as role \"deskgraph_app\""
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn serve_refuses_to_start_as_a_role_that_can_bypass_row_level_security() {
    let db = TestDb::new().await;
    let out = deskgraph()
        .arg("serve")
        .env("DATABASE_URL", &db.admin_url)
        .env("DESKGRAPH_JWT_SECRET", TEST_SECRET)
        .env("DESKGRAPH_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to start"), "{stderr}");
    assert!(stderr.contains("bypass row level security"), "{stderr}");
}

#[tokio::test]
async fn migrate_is_idempotent_from_the_command_line() {
    let db = TestDb::new().await;
    for _ in 0..2 {
        let out = deskgraph()
            .arg("migrate")
            .env("DATABASE_ADMIN_URL", &db.admin_url)
            .env("DESKGRAPH_LOG", "info")
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        // The template was migrated already: nothing to apply.
        assert!(String::from_utf8_lossy(&out.stdout).contains("none (up to date)"));
        // Idempotent DDL's NOTICEs (`create table if not exists`, a role granted again) are not
        // logged, and a log that is not a terminal gets no colour codes.
        assert!(!stderr.contains("NOTICE"), "{stderr}");
        assert!(!stderr.contains('\u{1b}'), "{stderr}");
        assert!(stderr.contains("INFO"), "the log is there: {stderr}");
    }
}

/// The long options a `--help` lists, in order.
fn listed_options(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("-h, ").unwrap_or(line);
            let option = line.strip_prefix("--")?;
            Some(
                option
                    .split([' ', '='])
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn help_of(args: &[&str]) -> String {
    let out = deskgraph().args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_commands_help_lists_only_what_it_reads_and_the_log_settings_once() {
    let top = listed_options(&help_of(&[]));
    for log in ["log", "log-format"] {
        assert_eq!(top.iter().filter(|o| *o == log).count(), 1, "{top:?}");
    }
    let names: Vec<String> = deskgraph::cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    assert!(names.len() >= 8, "{names:?}");
    for name in &names {
        let options = listed_options(&help_of(&[name]));
        // Each listed once, the log settings not among them.
        let mut unique = options.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), options.len(), "{name}: {options:?}");
        for log in ["log", "log-format"] {
            assert!(!options.iter().any(|o| o == log), "{name}: {options:?}");
        }
        let (exactly, never): (Option<&[&str]>, &[&str]) = match name.as_str() {
            "migrate" => (
                Some(&["database-admin-url", "app-role", "app-password", "help"]),
                &[],
            ),
            "token" => (
                Some(&[
                    "sub", "email", "name", "org", "ttl", "secret", "demo-dir", "help",
                ]),
                &[],
            ),
            "schema" => (Some(&["help"]), &[]),
            "manifest" => (Some(&["persisted-dir", "help"]), &[]),
            "serve" => (
                None,
                &["database-admin-url", "app-role", "app-password", "demo-dir"],
            ),
            "worker" => (
                None,
                &[
                    "database-admin-url",
                    "app-role",
                    "listen",
                    "jwt-secret",
                    "max-complexity",
                ],
            ),
            "reindex" => (
                None,
                &[
                    "database-listen-url",
                    "prepared-statements",
                    "pool-size",
                    "app-role",
                    "listen",
                    "workers",
                ],
            ),
            "demo" => (
                None,
                &["database-listen-url", "prepared-statements", "pool-size"],
            ),
            other => panic!("add `{other}` to this test"),
        };
        if let Some(exactly) = exactly {
            assert_eq!(options, exactly, "{name}");
        }
        for option in never {
            assert!(
                !options.iter().any(|o| o == option),
                "{name} lists --{option}"
            );
        }
    }
}

#[test]
fn reindex_refuses_without_qdrant() {
    let out = deskgraph()
        .arg("reindex")
        .env_remove("QDRANT_URL")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("reindex needs Qdrant"), "{stderr}");
    assert!(stderr.contains("set QDRANT_URL"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing queued");
}

/// `deskgraph manifest`: the persisted operations as an Apollo persisted query manifest.
mod manifest {
    use std::collections::BTreeMap;

    use deskgraph::schema::persisted::EMBEDDED;
    use serde_json::Value;
    use sha2::{Digest as _, Sha256};

    use super::deskgraph;

    fn sha256_hex(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// Runs `deskgraph manifest` with `args` and `dir` as `DESKGRAPH_PERSISTED_DIR` (unset: none).
    fn manifest(args: &[&str], dir: Option<&std::path::Path>) -> std::process::Output {
        let mut cmd = deskgraph();
        cmd.arg("manifest").args(args);
        match dir {
            Some(dir) => cmd.env("DESKGRAPH_PERSISTED_DIR", dir),
            None => cmd.env_remove("DESKGRAPH_PERSISTED_DIR"),
        };
        cmd.output().unwrap()
    }

    fn parse(out: &std::process::Output) -> Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(manifest["format"], "apollo-persisted-query-manifest");
        assert_eq!(manifest["version"], 1);
        for op in manifest["operations"].as_array().unwrap() {
            assert_eq!(op["id"], sha256_hex(op["body"].as_str().unwrap()), "{op}");
        }
        manifest
    }

    /// `(name, type)` of every operation, in the manifest's order.
    fn names_and_types(manifest: &Value) -> Vec<(String, String)> {
        manifest["operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|op| {
                (
                    op["name"].as_str().unwrap().to_owned(),
                    op["type"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn manifest_lists_the_embedded_catalogue_with_the_hashes_clients_send() {
        let out = manifest(&[], None);
        let printed = parse(&out);
        assert_eq!(
            names_and_types(&printed),
            [
                "AiAndCredits",
                "Dashboard",
                "ResponseTimes",
                "TicketVolume",
                "TicketsExport",
                "Workspaces"
            ]
            .map(|n| (n.to_owned(), "query".to_owned()))
        );
        let ids: BTreeMap<String, String> = printed["operations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|op| {
                (
                    op["id"].as_str().unwrap().to_owned(),
                    op["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        // The ids are the sha256 of the bodies compiled in, which are the files of schema/persisted.
        let embedded: BTreeMap<String, &str> = EMBEDDED
            .iter()
            .map(|(name, body)| (sha256_hex(body), *name))
            .collect();
        assert_eq!(
            ids.keys().collect::<Vec<_>>(),
            embedded.keys().collect::<Vec<_>>()
        );
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/persisted");
        let mut files = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "graphql") {
                files += 1;
                let id = sha256_hex(&std::fs::read_to_string(&path).unwrap());
                assert!(
                    ids.contains_key(&id),
                    "{} is not in the manifest",
                    path.display()
                );
            }
        }
        assert_eq!(files, ids.len());
        assert_eq!(
            ids[&sha256_hex(crate::common::persisted("tickets_export"))],
            "TicketsExport"
        );
        assert_eq!(
            ids[&sha256_hex(crate::common::persisted("dashboard"))],
            "Dashboard"
        );
        // Deterministic: the same bytes every time, and the folder itself lists alike.
        assert_eq!(manifest(&[], None).stdout, out.stdout);
        let from_folder = manifest(&[], Some(std::path::Path::new(dir)));
        assert_eq!(from_folder.stdout, out.stdout);
    }

    #[test]
    fn manifest_reads_the_folder_the_server_is_told_to() {
        let dir = std::env::temp_dir().join(format!("deskgraph-manifest-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        for (file, body) in [
            ("zeta.graphql", "query Zeta { viewer { role } }\n"),
            (
                "close.graphql",
                "mutation CloseTicket($id: ID!) { updateTicket(id: $id, input: {status: CLOSED}) { id } }\n",
            ),
            (
                "events.graphql",
                "subscription TicketEvents { ticketEvents { kind } }\n",
            ),
            ("README.md", "not a document"),
        ] {
            std::fs::write(dir.join(file), body).unwrap();
        }
        let expected = [
            ("CloseTicket", "mutation"),
            ("TicketEvents", "subscription"),
            ("Zeta", "query"),
        ]
        .map(|(n, t)| (n.to_owned(), t.to_owned()));
        let by_env = parse(&manifest(&[], Some(&dir)));
        assert_eq!(names_and_types(&by_env), expected);
        assert_eq!(
            by_env["operations"][2]["body"],
            "query Zeta { viewer { role } }\n"
        );
        let by_flag = parse(&manifest(&["--persisted-dir", dir.to_str().unwrap()], None));
        assert_eq!(by_flag, by_env);

        // A document with two operations has no one name: refused.
        std::fs::write(
            dir.join("two.graphql"),
            "query A { viewer { role } } query B { viewer { role } }",
        )
        .unwrap();
        let out = manifest(&[], Some(&dir));
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("two.graphql"), "{stderr}");
        std::fs::remove_dir_all(&dir).unwrap();

        // A folder that is not there is an error, not an empty catalogue.
        let out = manifest(&[], Some(&dir));
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(dir.to_str().unwrap()), "{stderr}");
    }
}

/// Settings are logged and printed with `{:?}` (start-up, errors): no secret may show.
mod config_debug {
    use clap::Parser;
    use deskgraph::ai::AiConfig;
    use deskgraph::config::{DbConfig, MigrateDbArgs, RuntimeDbArgs, ServerConfig};

    #[derive(Parser, Debug)]
    struct Configs {
        #[command(flatten)]
        runtime: RuntimeDbArgs,
        #[command(flatten)]
        owner: MigrateDbArgs,
        #[command(flatten)]
        server: ServerConfig,
        #[command(flatten)]
        ai: AiConfig,
    }

    #[test]
    fn debug_of_configs_shows_no_secret_and_clap_reads_them() {
        let cli = Configs::try_parse_from([
            "deskgraph",
            "--database-url",
            "postgres://deskgraph_app:url-pw-1@db.internal:5432/deskgraph",
            "--database-admin-url",
            "postgres://postgres@db.internal/deskgraph?password=url-pw-2&sslmode=disable",
            "--app-password",
            "app-pw-3",
            "--jwt-secret",
            "jwt-secret-4",
            "--openai-api-key",
            "sk-key-5",
            "--qdrant-api-key",
            "qdrant-key-6",
        ])
        .expect("the arguments parse");
        let db = DbConfig {
            database_admin_url: cli.owner.admin.database_admin_url.clone(),
            ..DbConfig::from(cli.runtime.clone())
        };
        let printed = format!("{cli:?} {cli:#?} {db:?}");
        for secret in [
            "url-pw-1",
            "url-pw-2",
            "app-pw-3",
            "jwt-secret-4",
            "sk-key-5",
            "qdrant-key-6",
        ] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        // Parsed as given, and what is not secret is still shown.
        assert_eq!(cli.server.jwt_secret.expose(), "jwt-secret-4");
        assert_eq!(cli.owner.role.app_password.expose(), "app-pw-3");
        assert_eq!(cli.ai.qdrant_api_key.expose(), "qdrant-key-6");
        assert_eq!(
            db.database_url.expose(),
            "postgres://deskgraph_app:url-pw-1@db.internal:5432/deskgraph"
        );
        assert!(printed.contains("postgres://deskgraph_app:***@db.internal:5432/deskgraph"));
        assert!(printed.contains("password=***&sslmode=disable"));
    }
}

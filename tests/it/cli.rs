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
    // Without a secret there is nothing to sign with.
    let out = deskgraph().args(["token", "--sub", "x"]).output().unwrap();
    assert!(!out.status.success());
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
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The template was migrated already: nothing to apply.
        assert!(String::from_utf8_lossy(&out.stdout).contains("none (up to date)"));
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
    use deskgraph::config::{DbConfig, ServerConfig};

    #[derive(Parser, Debug)]
    struct Configs {
        #[command(flatten)]
        db: DbConfig,
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
        let printed = format!("{cli:?} {cli:#?}");
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
        assert_eq!(cli.db.app_password.expose(), "app-pw-3");
        assert_eq!(cli.ai.qdrant_api_key.expose(), "qdrant-key-6");
        assert_eq!(
            cli.db.database_url.expose(),
            "postgres://deskgraph_app:url-pw-1@db.internal:5432/deskgraph"
        );
        assert!(printed.contains("postgres://deskgraph_app:***@db.internal:5432/deskgraph"));
        assert!(printed.contains("password=***&sslmode=disable"));
    }
}

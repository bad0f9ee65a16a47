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

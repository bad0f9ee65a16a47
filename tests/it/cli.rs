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

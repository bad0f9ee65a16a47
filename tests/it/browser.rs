//! GraphiQL in a real browser: headless Chromium (Debian's `chromium`), driven by
//! `tests/browser/graphiql.mjs` (playwright-core, pinned by its package-lock.json), against a server
//! set up as `deskgraph demo` sets one up, with every request to another host blocked. Skips visibly
//! without Chromium, Node.js 20+ or npm, or when `npm ci` cannot install.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokio::process::Command;

use crate::common::skip_visibly;

const TEST: &str = "browser::graphiql_works_offline_signed_in_as_a_demo_user";

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Why the browser test cannot run here, if it cannot.
async fn missing_tools(dir: &Path) -> Option<String> {
    let chromium = chromium();
    if !chromium.is_file() {
        return Some(format!(
            "no Chromium at {} (Debian: apt-get install chromium; or set CHROMIUM)",
            chromium.display()
        ));
    }
    crate::common::node_package_unavailable(dir, 20).await
}

/// Says where the screenshot is, where it is seen (the harness captures a passing test's output).
fn tell(line: &str) {
    use std::io::Write as _;
    use std::os::fd::AsFd as _;
    if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
        let _ = std::fs::File::from(fd).write_all(format!("{line}\n").as_bytes());
    }
}

#[tokio::test]
async fn graphiql_works_offline_signed_in_as_a_demo_user() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if let Some(why) = missing_tools(&dir).await {
        skip_visibly(TEST, &why);
        return;
    }
    let (app, seeded) = crate::graphiql::spawn_demo().await;
    // Kept after the test: the screenshot is there to be looked at.
    let out = std::env::temp_dir().join(format!(
        "deskgraph-browser-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&out).unwrap();
    let run = Command::new("node")
        .arg("graphiql.mjs")
        .current_dir(&dir)
        .env("DESKGRAPH_URL", &app.base)
        .env("DESKGRAPH_OUT", &out)
        .env("CHROMIUM", chromium())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(300), run)
        .await
        .expect("the browser run ends within 5 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the script failed:\n{stdout}\n{stderr}"
    );
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|_| panic!("the script prints JSON:\n{stdout}\n{stderr}"));
    eprintln!("{report:#}");
    if let Some(shot) = report["screenshot"].as_str() {
        tell(&format!("{TEST}: screenshot at {shot}"));
    }
    assert!(
        report["error"].is_null(),
        "the browser run failed: {report:#}"
    );

    // Offline: nothing but the server was asked for anything, and the CSP blocked nothing.
    assert_eq!(report["blocked"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["cspViolations"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["pageErrors"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["consoleErrors"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["loadingGone"], true, "{report:#}");

    // Signed in as the first seeded user, with the others to pick from.
    assert_eq!(report["headers"]["authorization"], true, "{report:#}");
    assert_eq!(
        report["headers"]["orgId"],
        seeded.orgs["acme"].to_string(),
        "{report:#}"
    );
    assert!(
        report["signedInAs"]
            .as_str()
            .is_some_and(|s| s.ends_with("owner of acme")),
        "{report:#}"
    );
    let users = report["users"].as_array().unwrap();
    assert_eq!(
        users.len(),
        seeded
            .members
            .iter()
            .map(|m| m.memberships.len())
            .sum::<usize>(),
        "{report:#}"
    );

    // The docs explorer has the schema.
    let docs = report["docs"].as_str().unwrap_or_default();
    assert!(docs.contains("QueryRoot"), "{docs}");
    assert!(docs.contains("MutationRoot"), "{docs}");

    // The example ran and returned tickets.
    assert!(
        report["query"]
            .as_str()
            .is_some_and(|q| q.contains("tickets(first: 20")),
        "{report:#}"
    );
    assert!(report["result"]["errors"].is_null(), "{report:#}");
    let tickets = report["result"]["tickets"].as_array().unwrap();
    assert!(!tickets.is_empty() && tickets.len() <= 20, "{report:#}");
    assert!(report["result"]["totalCount"].as_u64().unwrap_or(0) >= tickets.len() as u64);

    // The subscription ran over the websocket on /graphql, signed in by connection_init.
    let sub = &report["subscription"];
    assert_eq!(sub["connectionInitHasCredentials"], true, "{report:#}");
    assert_eq!(sub["acknowledged"], true, "{report:#}");
    assert!(
        sub["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u.as_str() == Some(&format!("{}/graphql", app.base.replacen("http", "ws", 1)))),
        "{report:#}"
    );
    assert_eq!(sub["event"]["kind"], "COMMENTED", "{report:#}");
    assert_eq!(
        sub["event"]["ticket"]["number"], sub["ticketNumber"],
        "{report:#}"
    );

    // Picking another user signs in as them.
    let picked = &report["picked"];
    assert!(
        picked["label"]
            .as_str()
            .is_some_and(|l| l.ends_with("viewer of globex")),
        "{report:#}"
    );
    assert_eq!(
        picked["orgId"],
        seeded.orgs["globex"].to_string(),
        "{report:#}"
    );
    assert!(picked["errors"].is_null(), "{report:#}");
    let theirs = picked["tickets"].as_array().unwrap();
    assert!(!theirs.is_empty(), "{report:#}");
    assert!(
        theirs.iter().all(|t| !tickets.contains(t)),
        "globex's viewer sees acme's tickets: {report:#}"
    );

    let shot = report["screenshot"].as_str().unwrap();
    assert!(
        std::fs::metadata(shot).is_ok_and(|m| m.len() > 10_000),
        "no screenshot at {shot}"
    );
}

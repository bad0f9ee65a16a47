//! The pages a browser gets: GraphiQL (its assets embedded and served from this origin, its CSP, the
//! demo's signed-in preset that `serve` never has), the landing page and the SDL. What a real browser
//! makes of them: `browser.rs`.

use std::collections::HashMap;
use std::io::Read as _;

use deskgraph::app::{Server, build_state};
use deskgraph::authz::Role;
use deskgraph::demo::Seeded;
use serde_json::{Value, json};

use crate::common::{RawResponse, TEST_SECRET, TestApp, TestDb, send_raw, server_config};

fn url(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.base)
}

/// A server set up as `deskgraph demo` sets one up: the sample data seeded, and GraphiQL signed in
/// as its users.
pub async fn spawn_demo() -> (TestApp, Seeded) {
    // As `TestApp::spawn_on` does: reqwest clients need rustls' process default provider.
    deskgraph::crypto::install();
    let db = TestDb::new().await;
    let cfg = server_config();
    let state = build_state(&db.db_config(), &cfg, deskgraph::ai::Ai::builtin())
        .await
        .expect("server state builds");
    let seeded = deskgraph::demo::seed_with(&state.engine.pool, &state.engine.ai)
        .await
        .expect("the sample data seeds");
    state
        .graphiql
        .sign_in_as(deskgraph::demo::graphiql_users(&seeded, TEST_SECRET).unwrap())
        .unwrap();
    let server = Server::start(state, &cfg).await.expect("server starts");
    let base = format!("http://{}", server.addr);
    let app = TestApp {
        db,
        server: Some(server),
        base,
        http: reqwest::Client::new(),
    };
    (app, seeded)
}

/// `directive -> sources` of a Content-Security-Policy header.
fn csp(header: &str) -> HashMap<String, Vec<String>> {
    header
        .split(';')
        .filter_map(|d| {
            let mut parts = d.split_whitespace();
            let name = parts.next()?.to_ascii_lowercase();
            Some((name, parts.map(str::to_owned).collect()))
        })
        .collect()
}

/// Values of `attr="..."` inside every `<tag ...>` of `html` that matches `filter`.
fn attributes(html: &str, tag: &str, attr: &str, filter: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = vec![];
    let open = format!("<{tag}");
    let needle = format!("{attr}=\"");
    let mut rest = html;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let end = rest.find('>').unwrap();
        let element = &rest[..end];
        if filter(element)
            && let Some(j) = element.find(&needle)
        {
            let value = &element[j + needle.len()..];
            out.push(value[..value.find('"').unwrap()].to_owned());
        }
    }
    out
}

async fn graphiql(app: &TestApp) -> RawResponse {
    let resp = send_raw(
        app.http
            .get(url(app, "/graphql"))
            .header("accept", "text/html"),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert!(
        resp.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "{:?}",
        resp.header("content-type")
    );
    resp
}

/// The page's settings: the JSON data block its script starts GraphiQL with.
fn settings(html: &str) -> Value {
    let open = r#"<script type="application/json" id="graphiql-settings">"#;
    let start = html.find(open).expect("the page has its settings") + open.len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end]).unwrap()
}

/// A CSP that lets the page load from this origin only: no host but the server's (and only for its
/// websocket), no scheme or wildcard source, and no inline or evaluated script.
fn assert_same_origin_csp(case: &str, header: &str, host: &str) {
    let policy = csp(header);
    assert_eq!(
        policy.get("default-src"),
        Some(&vec!["'none'".to_owned()]),
        "{case}: {header}"
    );
    for (directive, sources) in &policy {
        for source in sources {
            let websocket = directive == "connect-src"
                && (source == &format!("ws://{host}") || source == &format!("wss://{host}"));
            // One known inline style, by its hash (GraphiQL's dialogs' scroll lock).
            let hashed_style = directive == "style-src" && source.starts_with("'sha256-");
            assert!(
                websocket
                    || hashed_style
                    || matches!(source.as_str(), "'self'" | "'none'" | "data:"),
                "{case}: {directive} allows {source}: {header}"
            );
        }
    }
    for directive in ["script-src", "default-src"] {
        let sources = policy.get(directive).cloned().unwrap_or_default();
        assert!(
            !sources
                .iter()
                .any(|s| s == "'unsafe-inline'" || s == "'unsafe-eval'" || s == "data:"),
            "{case}: {directive} runs inline code: {header}"
        );
    }
    // GraphiQL styles elements through the CSSOM, which needs no 'unsafe-inline'.
    assert!(!header.contains("'unsafe-inline'"), "{case}: {header}");
    assert_eq!(
        policy.get("frame-ancestors"),
        Some(&vec!["'none'".to_owned()])
    );
}

/// Every script and stylesheet the page references, as same-origin paths.
fn referenced_assets(case: &str, html: &str) -> Vec<String> {
    let scripts = attributes(html, "script", "src", |_| true);
    let styles = attributes(html, "link", "href", |e| e.contains("stylesheet"));
    assert!(
        scripts.len() >= 4,
        "{case}: React, ReactDOM, GraphiQL and its start-up: {scripts:?}"
    );
    assert!(!styles.is_empty(), "{case}");
    // The only script element without `src` is the settings, a data block that never runs.
    assert_eq!(
        html.matches("<script").count(),
        scripts.len() + 1,
        "{case}: an inline script: {html}"
    );
    let mut assets: Vec<String> = scripts.into_iter().chain(styles).collect();
    for icon in attributes(html, "link", "href", |e| e.contains("icon")) {
        assert!(
            icon.starts_with("data:") || icon.starts_with('/'),
            "{case}: {icon}"
        );
    }
    for path in &assets {
        assert!(
            path.starts_with("/assets/") && !path.starts_with("//"),
            "{case}: {path} is not a path of this server"
        );
    }
    assets.sort();
    assets.dedup();
    assets
}

#[tokio::test]
async fn graphiql_loads_only_embedded_same_origin_assets_under_a_self_only_csp() {
    let app = TestApp::spawn().await;
    let resp = graphiql(&app).await;
    let host = app.base.trim_start_matches("http://").to_owned();
    assert_same_origin_csp(
        "GraphiQL",
        resp.header("content-security-policy").unwrap(),
        &host,
    );
    let connect = csp(resp.header("content-security-policy").unwrap())["connect-src"].clone();
    assert!(
        connect.contains(&"'self'".to_owned()) && connect.contains(&format!("ws://{host}")),
        "GraphiQL talks to this server, over HTTP and websockets: {connect:?}"
    );
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    assert!(!resp.text.contains("unpkg"), "{}", resp.text);
    assert_eq!(settings(&resp.text)["endpoint"], "/graphql");

    let assets = referenced_assets("GraphiQL", &resp.text);
    let mut names = vec![];
    for path in &assets {
        let name = path.rsplit('/').next().unwrap().to_owned();
        let plain = app.http.get(url(&app, path)).send().await.unwrap();
        assert_eq!(plain.status(), 200, "{path}");
        let headers = plain.headers().clone();
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let expected = if name.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(header("content-type"), expected, "{path}");
        let cache = header("cache-control");
        assert!(
            cache.contains("public") && cache.contains("immutable"),
            "{path}: {cache}"
        );
        let max_age: u64 = cache
            .split(',')
            .find_map(|d| d.trim().strip_prefix("max-age="))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(max_age >= 365 * 24 * 3600, "{path}: {cache}");
        assert_eq!(header("content-encoding"), "", "{path}: asked for no gzip");
        let body = plain.bytes().await.unwrap();
        assert!(!body.is_empty(), "{path}");

        // Gzipped for a client that takes it: the same bytes once inflated.
        let gz = app
            .http
            .get(url(&app, path))
            .header("accept-encoding", "gzip, br")
            .send()
            .await
            .unwrap();
        assert_eq!(gz.status(), 200, "{path}");
        assert_eq!(
            gz.headers().get("content-encoding").map(|v| v.as_bytes()),
            Some(&b"gzip"[..]),
            "{path}"
        );
        let compressed = gz.bytes().await.unwrap();
        let mut inflated = vec![];
        flate2::read::GzDecoder::new(&compressed[..])
            .read_to_end(&mut inflated)
            .unwrap();
        assert_eq!(inflated, body, "{path}");
        if name == "deskgraph-graphiql.js" {
            let script = String::from_utf8_lossy(&body);
            assert!(
                script.contains("subscriptionUrl"),
                "GraphiQL runs subscriptions over a websocket"
            );
        }
        names.push(name);
    }
    names.sort();
    assert_eq!(
        names,
        [
            "deskgraph-graphiql.js",
            "deskgraph.css",
            "graphiql.min.css",
            "graphiql.min.js",
            "react-dom.production.min.js",
            "react.production.min.js"
        ]
    );

    // A path names one content: another hash (an older version) is not served.
    let path = &assets[0];
    let name = path.rsplit('/').next().unwrap();
    let stale = send_raw(
        app.http
            .get(url(&app, &format!("/assets/0123456789abcdef/{name}"))),
    )
    .await;
    assert_eq!(stale.status, 404);
    assert_eq!(stale.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn the_graphiql_page_of_serve_carries_no_credentials() {
    let app = TestApp::spawn().await;
    let resp = graphiql(&app).await;
    let settings = settings(&resp.text);
    assert_eq!(settings["users"], json!([]), "{settings}");
    // No bearer token of any kind (a JWT starts with eyJ) and no organization id.
    assert!(!resp.text.contains("Bearer ey"), "{}", resp.text);
    assert!(!resp.text.contains("eyJ"), "{}", resp.text);
    assert!(!resp.text.contains("\"x-org-id\":"), "{}", resp.text);
    // It says where credentials go instead.
    let query = settings["query"].as_str().unwrap();
    assert!(query.contains("Headers tab"), "{query}");
    assert_eq!(resp.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn the_demos_graphiql_opens_signed_in_with_an_example_that_returns_tickets() {
    let (app, seeded) = spawn_demo().await;
    let resp = graphiql(&app).await;
    let host = app.base.trim_start_matches("http://").to_owned();
    assert_same_origin_csp(
        "the demo's GraphiQL",
        resp.header("content-security-policy").unwrap(),
        &host,
    );
    referenced_assets("the demo's GraphiQL", &resp.text);
    // Tokens in the page: never to be kept by a cache.
    assert_eq!(resp.header("cache-control"), Some("no-store"));

    let settings = settings(&resp.text);
    let users = settings["users"].as_array().unwrap();
    // One entry per seeded membership: owner, admin, agent and viewer of each organization.
    let memberships: usize = seeded.members.iter().map(|m| m.memberships.len()).sum();
    assert_eq!(users.len(), memberships, "{settings}");
    for slug in seeded.orgs.keys() {
        for role in [Role::Owner, Role::Admin, Role::Agent, Role::Viewer] {
            let label = format!("{role} of {slug}");
            assert!(
                users
                    .iter()
                    .any(|u| u["label"].as_str().unwrap().ends_with(&label)),
                "no {label}: {settings}"
            );
        }
    }
    let first = &users[0];
    assert!(
        first["label"].as_str().unwrap().ends_with("owner of acme"),
        "{first}"
    );
    assert_eq!(
        first["headers"]["x-org-id"],
        seeded.orgs["acme"].to_string()
    );

    // Every user's headers work as they are, and the example query answers with tickets.
    let query = settings["query"].as_str().unwrap();
    for user in users {
        let mut req = app
            .http
            .post(url(&app, "/graphql"))
            .json(&json!({ "query": query }));
        for (name, value) in user["headers"].as_object().unwrap() {
            req = req.header(name.as_str(), value.as_str().unwrap());
        }
        let resp = send_raw(req).await;
        assert_eq!(resp.status, 200, "{}: {}", user["label"], resp.text);
        let body = resp.json();
        assert!(body.get("errors").is_none(), "{}: {body}", user["label"]);
        let edges = body["data"]["tickets"]["edges"].as_array().unwrap();
        assert!(!edges.is_empty(), "{}: {body}", user["label"]);
        assert!(edges.len() <= 20);
    }
}

#[tokio::test]
async fn the_landing_page_links_graphiql_the_schema_and_the_operational_endpoints() {
    let app = TestApp::spawn().await;
    // A browser and a client that asks for nothing in particular get the same page.
    for accept in [Some("text/html,application/xhtml+xml,*/*;q=0.8"), None] {
        let mut req = app.http.get(url(&app, "/"));
        if let Some(accept) = accept {
            req = req.header("accept", accept);
        }
        let resp = send_raw(req).await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        assert!(
            resp.header("content-type")
                .unwrap_or_default()
                .starts_with("text/html")
        );
        let header = resp.header("content-security-policy").unwrap();
        assert_same_origin_csp("the landing page", header, "-");
        assert!(
            !header.contains("script-src"),
            "the landing page runs no script: {header}"
        );
        assert!(!resp.text.contains("<script"), "{}", resp.text);
        assert!(resp.text.contains("deskgraph"));
        let links = attributes(&resp.text, "a", "href", |_| true);
        for path in [
            "/graphql",
            "/schema.graphql",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            assert!(
                links.iter().any(|l| l == path),
                "no link to {path}: {links:?}"
            );
        }
        for path in attributes(&resp.text, "link", "href", |e| e.contains("stylesheet")) {
            let css = send_raw(app.http.get(url(&app, &path))).await;
            assert_eq!(css.status, 200, "{path}");
        }
    }
    // Each link leads somewhere (GraphiQL is checked above).
    for path in ["/schema.graphql", "/healthz", "/readyz", "/metrics"] {
        let resp = send_raw(app.http.get(url(&app, path))).await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.text);
    }
    let sdl = send_raw(app.http.get(url(&app, "/schema.graphql"))).await;
    assert_eq!(
        sdl.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/schema.graphql"
    ))
    .unwrap();
    assert_eq!(sdl.text, committed);
    assert!(sdl.text.contains("type QueryRoot"));
}

//! HTTP surface: health and readiness, security headers and request ids, queries over GET, CORS,
//! persisted queries for analyst keys, and graceful shutdown (GraphiQL and the landing page:
//! `graphiql.rs`).

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::common::{
    Caller, OrgFixture, RawResponse, TestApp, error_code, org_fixture, persisted, send_raw,
    server_config,
};

fn url(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.base)
}

#[tokio::test]
async fn health_and_readiness_answer_200() {
    let app = TestApp::spawn().await;
    let resp = send_raw(app.http.get(url(&app, "/healthz"))).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text, "ok");
    let resp = send_raw(app.http.get(url(&app, "/readyz"))).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
}

fn assert_api_security_headers(case: &str, resp: &crate::common::RawResponse) {
    let policy = resp.header("content-security-policy").unwrap_or_default();
    assert!(
        policy.contains("default-src 'none'"),
        "{case}: CSP is {policy:?}"
    );
    assert_eq!(
        resp.header("x-content-type-options"),
        Some("nosniff"),
        "{case}"
    );
    assert_eq!(resp.header("x-frame-options"), Some("DENY"), "{case}");
    let id = resp.header("x-request-id").unwrap_or_default();
    assert!(!id.is_empty(), "{case}: no x-request-id");
}

#[tokio::test]
async fn api_responses_carry_security_headers_and_a_request_id() {
    let app = TestApp::spawn().await;
    let caller = Caller::user("someone");
    let ok = send_raw(
        caller.apply(
            app.http
                .post(url(&app, "/graphql"))
                .json(&json!({"query": "{ viewer { role } }"})),
        ),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_api_security_headers("a successful query", &ok);

    let refused = send_raw(
        app.http
            .post(url(&app, "/graphql"))
            .json(&json!({"query": "{ viewer { role } }"})),
    )
    .await;
    assert_eq!(refused.status, 401);
    assert_api_security_headers("an unauthenticated request", &refused);

    let health = send_raw(app.http.get(url(&app, "/healthz"))).await;
    assert_api_security_headers("the health check", &health);

    // Each request gets its own id, a UUIDv7 the server generated ...
    assert_ne!(ok.header("x-request-id"), refused.header("x-request-id"));
    for resp in [&ok, &refused, &health] {
        let id = resp.header("x-request-id").unwrap();
        assert_eq!(
            uuid::Uuid::parse_str(id).unwrap().get_version_num(),
            7,
            "{id}"
        );
    }
    // ... whatever the client sends: its own id (plain, odd, or another request's id) is neither
    // kept nor echoed as the request id (the audit trail records a plain one apart: tests/it/audit.rs).
    let earlier = ok.header("x-request-id").unwrap().to_owned();
    for sent in [
        "trace-4711-abc",
        earlier.as_str(),
        "has spaces",
        "semi;colon",
        &"x".repeat(129),
    ] {
        let resp = send_raw(
            caller.apply(
                app.http
                    .post(url(&app, "/graphql"))
                    .header("x-request-id", sent)
                    .json(&json!({"query": "{ viewer { role } }"})),
            ),
        )
        .await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        let id = resp.header("x-request-id").unwrap();
        assert_ne!(id, sent);
        assert_ne!(id, earlier);
        assert_eq!(
            uuid::Uuid::parse_str(id).unwrap().get_version_num(),
            7,
            "{id}"
        );
        assert_eq!(resp.header("x-client-request-id"), None);
    }
}

#[tokio::test]
async fn a_query_sent_with_get_and_a_bearer_token_executes() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let resp = send_raw(
        org.owner.apply(
            app.http
                .get(url(&app, "/graphql"))
                .query(&[("query", "{viewer{role}}")]),
        ),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json(), json!({"data": {"viewer": {"role": "OWNER"}}}));
    assert!(
        resp.header("content-security-policy")
            .unwrap_or_default()
            .contains("default-src 'none'"),
        "a GET API response gets the strict CSP"
    );

    // With variables and without credentials.
    let resp = send_raw(
        org.viewer
            .apply(app.http.get(url(&app, "/graphql")).query(&[
                ("query", "query($t: ID!) { ticket(id: $t) { id } }"),
                ("variables", &json!({"t": org.ticket}).to_string()),
            ])),
    )
    .await;
    assert_eq!(resp.json()["data"]["ticket"]["id"], org.ticket.as_str());
    let resp = send_raw(
        app.http
            .get(url(&app, "/graphql"))
            .query(&[("query", "{viewer{role}}")]),
    )
    .await;
    assert_eq!(resp.status, 401);
    assert_eq!(error_code(&resp.json()).as_deref(), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn cors_preflight_is_allowed_for_the_configured_origin_only() {
    let app = TestApp::spawn().await;
    let preflight = |origin: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, url(&app, "/graphql"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,x-org-id",
            )
    };
    let allowed = send_raw(preflight("https://desk.example")).await;
    assert!(
        (200..300).contains(&allowed.status),
        "{} {}",
        allowed.status,
        allowed.text
    );
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://desk.example")
    );
    let methods = allowed
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert!(methods.contains("POST"), "{methods}");
    let headers = allowed
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in ["authorization", "content-type", "x-org-id"] {
        assert!(headers.contains(h), "{h} not in {headers}");
    }

    let foreign = send_raw(preflight("https://evil.example")).await;
    assert_eq!(foreign.header("access-control-allow-origin"), None);

    // An actual request from the configured origin may read the response and its request id.
    let caller = Caller::user("browser-user");
    let resp = send_raw(
        caller.apply(
            app.http
                .post(url(&app, "/graphql"))
                .header("origin", "https://desk.example")
                .json(&json!({"query": "{ viewer { role } }"})),
        ),
    )
    .await;
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("https://desk.example")
    );
    assert!(
        resp.header("access-control-expose-headers")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .contains("x-request-id")
    );
    let resp = send_raw(
        caller.apply(
            app.http
                .post(url(&app, "/graphql"))
                .header("origin", "https://evil.example")
                .json(&json!({"query": "{ viewer { role } }"})),
        ),
    )
    .await;
    assert_eq!(resp.header("access-control-allow-origin"), None);
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn ticket_ids(data: &Value) -> Vec<String> {
    data["tickets"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn post_body(app: &TestApp, caller: &Caller, body: Value) -> (u16, Value) {
    let resp = send_raw(caller.apply(app.http.post(url(app, "/graphql")).json(&body))).await;
    let json = resp.json();
    (resp.status, json)
}

async fn two_orgs(app: &TestApp) -> (OrgFixture, OrgFixture) {
    (
        org_fixture(app, "acme").await,
        org_fixture(app, "globex").await,
    )
}

#[tokio::test]
async fn the_analyst_key_runs_the_registered_export_by_text_and_by_hash() {
    let app = TestApp::spawn().await;
    let (a, b) = two_orgs(&app).await;
    let text = persisted("tickets_export");
    let hash = sha256_hex(text);

    // By text.
    let by_text = app.ok(&a.analyst_key, text, json!({"first": 50})).await;
    assert_eq!(by_text["tickets"]["totalCount"], 1);
    assert_eq!(ticket_ids(&by_text), vec![a.ticket.clone()]);
    assert_eq!(
        by_text["tickets"]["edges"][0]["node"]["workspace"]["id"],
        a.workspace.as_str()
    );

    // By hash, with an empty query (POST).
    let pq = json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});
    let (status, by_hash) = post_body(
        &app,
        &a.analyst_key,
        json!({"query": "", "variables": {"first": 50}, "extensions": pq}),
    )
    .await;
    assert_eq!(status, 200, "{by_hash}");
    assert!(by_hash.get("errors").is_none(), "{by_hash}");
    assert_eq!(by_hash["data"], by_text);

    // By hash over GET, without a query parameter.
    let resp = send_raw(
        a.analyst_key
            .apply(app.http.get(url(&app, "/graphql")).query(&[
                ("extensions", pq.to_string()),
                ("variables", json!({"first": 50}).to_string()),
            ])),
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json()["data"], by_text);

    // The hash may be sent together with its exact text, too.
    let (_, both) = post_body(
        &app,
        &a.analyst_key,
        json!({"query": text, "variables": {"first": 50}, "extensions": pq}),
    )
    .await;
    assert_eq!(both["data"], by_text);

    // The other organization's analyst key sees its own tickets only.
    let other = app.ok(&b.analyst_key, text, json!({"first": 50})).await;
    assert_eq!(ticket_ids(&other), vec![b.ticket.clone()]);

    // The second registered document runs too.
    let ws = app
        .ok(&a.analyst_key, persisted("workspaces"), json!({}))
        .await;
    assert_eq!(ws["organization"]["slug"], "acme");
}

#[tokio::test]
async fn the_analyst_key_may_not_send_free_text_queries_or_mutations() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    for query in [
        "{ tickets { totalCount } }",
        "{ viewer { role } }",
        // The registered text with one token changed is no longer registered.
        &persisted("tickets_export").replacen("totalCount", "total: totalCount", 1),
        "mutation($ws: ID!) { createTicket(input: {workspaceId: $ws, title: \"x\"}) { id } }",
    ] {
        let (status, body) = app
            .post(&org.analyst_key, query, json!({"ws": org.workspace}))
            .await;
        assert_eq!(status, 403, "{query}: {body}");
        assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"), "{body}");
        assert!(body["data"].is_null());
        // The refusal says how a document is recognised.
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("whitespace, commas and comments"),
            "{body}"
        );
        assert!(message.contains("persistedQuery"), "{body}");
    }
    let data = app
        .ok(&org.owner, "{ tickets { totalCount } }", json!({}))
        .await;
    assert_eq!(data["tickets"]["totalCount"], 1);
}

/// Clients reformat documents (a trailing newline lost, indentation, comments stripped by a build
/// step): a persisted document sent as text is recognised by its tokens, not its bytes.
#[tokio::test]
async fn a_persisted_document_sent_as_text_is_recognised_whatever_its_layout() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let file = persisted("tickets_export");
    let expected = app.ok(&org.analyst_key, file, json!({})).await;
    assert_eq!(expected["tickets"]["totalCount"], 1);
    let without_comments: String = file
        .lines()
        .filter(|line| !line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let one_line = file
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    for (case, text) in [
        ("without the trailing newline", file.trim_end().to_owned()),
        ("without comments", without_comments),
        ("on one line", one_line),
        ("indented with tabs", file.replace("  ", "\t")),
    ] {
        assert_ne!(text, file, "{case}");
        let data = app.ok(&org.analyst_key, &text, json!({})).await;
        assert_eq!(data, expected, "{case}");
        // Sent with its hash, the text may be laid out differently too.
        let (status, body) = post_body(
            &app,
            &org.analyst_key,
            json!({"query": text, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(file)}}}),
        )
        .await;
        assert_eq!(status, 200, "{case}: {body}");
        assert_eq!(body["data"], expected, "{case}");
    }
}

#[tokio::test]
async fn unknown_and_mismatching_persisted_query_hashes_are_refused() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let unknown = json!({"persistedQuery": {"version": 1, "sha256Hash": "0".repeat(64)}});
    for caller in [&org.analyst_key, &org.owner] {
        let (_, body) = post_body(&app, caller, json!({"query": "", "extensions": unknown})).await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("PERSISTED_QUERY_NOT_FOUND"),
            "{body}"
        );
        assert!(body["data"].is_null());
    }

    let hash = sha256_hex(persisted("tickets_export"));
    let mismatch = json!({
        "query": "{ viewer { role } }",
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}},
    });
    let (_, body) = post_body(&app, &org.analyst_key, mismatch).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("BAD_USER_INPUT"),
        "{body}"
    );
    assert!(body["data"].is_null());

    // A persistedQuery extension without a hash is bad input as well.
    let (_, body) = post_body(
        &app,
        &org.analyst_key,
        json!({"query": "", "extensions": {"persistedQuery": {"version": 1}}}),
    )
    .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("BAD_USER_INPUT"),
        "{body}"
    );
}

/// A GET of the persisted operation `name` (`schema/persisted/{name}.graphql`) by hash, as `caller`.
fn persisted_get(
    app: &TestApp,
    caller: &Caller,
    name: &str,
    variables: &Value,
) -> reqwest::RequestBuilder {
    let pq = json!({"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(persisted(name))}});
    caller.apply(app.http.get(url(app, "/graphql")).query(&[
        ("extensions", pq.to_string()),
        ("variables", variables.to_string()),
    ]))
}

fn assert_not_cacheable(case: &str, resp: &RawResponse) {
    assert_eq!(resp.header("cache-control"), Some("no-store"), "{case}");
    assert_eq!(resp.header("etag"), None, "{case}");
}

fn vary(resp: &RawResponse) -> String {
    resp.headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_lowercase())
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test]
async fn analyst_gets_of_persisted_operations_are_privately_cacheable_and_revalidate() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let vars = json!({"first": 50});
    let get = || persisted_get(&app, &org.analyst_key, "tickets_export", &vars);

    let resp = send_raw(get()).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert!(resp.json().get("errors").is_none(), "{}", resp.text);
    assert_eq!(resp.json()["data"]["tickets"]["totalCount"], 1);
    assert_eq!(resp.header("cache-control"), Some("private, max-age=60"));
    // GraphQL over HTTP: the negotiated media type (reqwest sends `Accept: */*`), in UTF-8.
    assert_eq!(
        resp.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let etag = resp.header("etag").expect("an ETag").to_owned();
    assert_eq!(
        etag,
        format!("\"{}\"", sha256_hex(&resp.text)),
        "a strong tag: the sha256 of the body"
    );
    let varies = vary(&resp);
    assert!(
        varies.contains("authorization") && varies.contains("x-org-id"),
        "{varies}"
    );
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    assert!(resp.header("x-request-id").is_some());

    // The same data: the same body and tag.
    let again = send_raw(get()).await;
    assert_eq!(again.text, resp.text);
    assert_eq!(again.header("etag"), Some(etag.as_str()));

    // A client holding the tag gets 304 Not Modified, without a body, with the cache headers.
    for if_none_match in [
        etag.clone(),
        format!("\"0\", {etag}"),
        format!("W/{etag}"),
        "*".to_owned(),
    ] {
        let resp = send_raw(get().header("if-none-match", &if_none_match)).await;
        assert_eq!(resp.status, 304, "{if_none_match}: {}", resp.text);
        assert!(resp.text.is_empty(), "{}", resp.text);
        assert_eq!(resp.header("etag"), Some(etag.as_str()));
        assert_eq!(resp.header("cache-control"), Some("private, max-age=60"));
        assert!(vary(&resp).contains("authorization"));
    }
    // Another tag: the whole response.
    let other = send_raw(get().header("if-none-match", "\"0\"")).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.text, resp.text);

    // Once the data changes, so does the tag: the old one gets the new data.
    app.ok(
        &org.agent,
        "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }",
        json!({"i": {"workspaceId": org.workspace, "title": "second"}}),
    )
    .await;
    let changed = send_raw(get().header("if-none-match", &etag)).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.json()["data"]["tickets"]["totalCount"], 2);
    assert_ne!(changed.header("etag"), Some(etag.as_str()));

    // By hash over POST: never cached.
    let pq = json!({"persistedQuery": {"version": 1, "sha256Hash": sha256_hex(persisted("tickets_export"))}});
    let post = send_raw(
        org.analyst_key.apply(
            app.http
                .post(url(&app, "/graphql"))
                .header("if-none-match", &etag)
                .json(&json!({"query": "", "variables": vars, "extensions": pq})),
        ),
    )
    .await;
    assert_eq!(post.status, 200, "{}", post.text);
    assert!(post.json().get("errors").is_none(), "{}", post.text);
    assert_not_cacheable("POST", &post);

    // Anyone else's GET of the same persisted operation: not cached.
    for (case, caller) in [
        ("owner", &org.owner),
        ("viewer", &org.viewer),
        ("agent key", &org.agent_key),
    ] {
        let resp = send_raw(persisted_get(&app, caller, "tickets_export", &vars)).await;
        assert_eq!(resp.status, 200, "{case}: {}", resp.text);
        assert!(resp.json().get("errors").is_none(), "{case}: {}", resp.text);
        assert_not_cacheable(case, &resp);
    }

    // A persisted GET that fails is not cached.
    let failed = send_raw(persisted_get(
        &app,
        &org.analyst_key,
        "tickets_export",
        &json!({"first": "many"}),
    ))
    .await;
    assert!(failed.json().get("errors").is_some(), "{}", failed.text);
    assert_not_cacheable("errors", &failed);

    // An ad-hoc document over GET is refused to the analyst key.
    let adhoc = send_raw(
        org.analyst_key.apply(
            app.http
                .get(url(&app, "/graphql"))
                .query(&[("query", "{ tickets { totalCount } }")]),
        ),
    )
    .await;
    assert_eq!(adhoc.status, 403, "{}", adhoc.text);
    assert_eq!(error_code(&adhoc.json()).as_deref(), Some("FORBIDDEN"));
    assert_not_cacheable("ad hoc", &adhoc);
}

#[tokio::test]
async fn analyst_caching_is_off_with_a_max_age_of_zero() {
    let mut cfg = server_config();
    cfg.analyst_cache_max_age_secs = 0;
    let app = TestApp::spawn_with(cfg).await;
    let org = org_fixture(&app, "acme").await;
    let resp = send_raw(persisted_get(
        &app,
        &org.analyst_key,
        "workspaces",
        &json!({}),
    ))
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.json()["data"]["organization"]["slug"], "acme");
    assert_not_cacheable("max-age 0", &resp);
}

#[tokio::test]
async fn a_not_modified_answer_still_counts_against_the_rate_limit() {
    let mut cfg = server_config();
    // The fixture spends about ten of these.
    cfg.rate_limit_per_minute = 30;
    let app = TestApp::spawn_with(cfg).await;
    let org = org_fixture(&app, "acme").await;
    let first = send_raw(persisted_get(
        &app,
        &org.analyst_key,
        "workspaces",
        &json!({}),
    ))
    .await;
    let etag = first.header("etag").expect("an ETag").to_owned();
    let mut not_modified = 0;
    for _ in 0..30 {
        let resp = send_raw(
            persisted_get(&app, &org.analyst_key, "workspaces", &json!({}))
                .header("if-none-match", &etag),
        )
        .await;
        match resp.status {
            304 => not_modified += 1,
            429 => {
                assert!(not_modified > 0);
                assert_eq!(error_code(&resp.json()).as_deref(), Some("RATE_LIMITED"));
                assert_not_cacheable("rate limited", &resp);
                return;
            }
            other => panic!("{other}: {}", resp.text),
        }
    }
    panic!("{not_modified} answers of 304 and never rate limited");
}

/// Every operation of the catalogue runs for an analyst key with only its required variables (the
/// optional ones take their defaults), by hash over GET, without errors, and revalidates.
#[tokio::test]
async fn every_persisted_operation_runs_for_the_analyst_key_with_required_variables_only() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let to = chrono::Utc::now() + chrono::Duration::days(1);
    let from = to - chrono::Duration::days(30);
    let mut failures = vec![];
    for (name, text) in deskgraph::schema::persisted::EMBEDDED {
        let vars = if text.contains("$from: DateTime!") {
            json!({"from": from.to_rfc3339(), "to": to.to_rfc3339()})
        } else {
            json!({})
        };
        let resp = send_raw(persisted_get(&app, &org.analyst_key, name, &vars)).await;
        let body = resp.json();
        if resp.status != 200 || body.get("errors").is_some() {
            failures.push(format!("{name}: {} {}", resp.status, resp.text));
        } else {
            // The same data serializes alike (async-graphql alone orders fields as their resolvers
            // finish): the tag revalidates.
            let etag = resp.header("etag").expect("an ETag");
            let again = send_raw(
                persisted_get(&app, &org.analyst_key, name, &vars).header("if-none-match", etag),
            )
            .await;
            assert_eq!(again.status, 304, "{name}: {}", again.text);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn graceful_shutdown_stops_the_server_and_frees_the_port() {
    let mut app = TestApp::spawn().await;
    let resp = send_raw(app.http.get(url(&app, "/healthz"))).await;
    assert_eq!(resp.status, 200);
    let server = app.server.take().unwrap();
    let addr = server.addr;
    server.stop().await.unwrap();
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(
        refused.is_err(),
        "the port still accepts connections after shutdown"
    );
    assert!(
        reqwest::Client::new()
            .get(url(&app, "/healthz"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn metrics_count_operations_by_outcome_and_name_no_tenant() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    app.ok(&org.agent, "{ tickets { totalCount } }", json!({}))
        .await;
    let (status, _) = app
        .post(&Caller::anonymous(), "{ viewer { role } }", json!({}))
        .await;
    assert_eq!(status, 401);
    let raw = send_raw(app.http.get(format!("{}/metrics", app.base))).await;
    assert_eq!(raw.status, 200);
    assert!(
        raw.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let ok_line = raw
        .text
        .lines()
        .find(|l| l.starts_with("deskgraph_graphql_operations_total{outcome=\"ok\"}"))
        .expect("ok counter");
    let ok: f64 = ok_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(ok >= 10.0, "{ok_line}");
    assert!(
        raw.text
            .contains("deskgraph_graphql_operations_total{outcome=\"unauthenticated\"} 1"),
        "{}",
        raw.text
    );
    assert!(raw.text.contains("deskgraph_db_pool_connections"));
    for secret in [org.id.to_string(), org.ticket.clone(), "acme".into()] {
        assert!(!raw.text.contains(&secret), "metrics leak {secret}");
    }
}

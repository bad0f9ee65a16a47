//! GraphQL over HTTP (https://graphql.github.io/graphql-over-http/draft/): the conformance audit of
//! the reference implementation (graphql-http's `auditServer`, run by `tests/graphql-http/audit.mjs`)
//! against a real server, and one test per status rule, so a regression names itself without node.

use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::process::Command;

use crate::common::{
    Caller, RawResponse, TestApp, error_code, org_fixture, persisted, send_raw, skip_visibly,
};

#[tokio::test]
async fn the_graphql_http_audit_finds_no_warnings_and_no_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/graphql-http");
    // The audit script needs fetch and Headers, built into Node.js from 18 on.
    if let Some(why) = crate::common::node_package_unavailable(&dir, 18).await {
        skip_visibly(
            "graphql_over_http::the_graphql_http_audit_finds_no_warnings_and_no_errors",
            &why,
        );
        return;
    }

    let app = TestApp::spawn().await;
    // Every request needs a caller: the audit's go out as the owner of an organization.
    let org = org_fixture(&app, "acme").await;
    let bearer = org.owner.bearer.clone().expect("the owner has a token");
    let out = Command::new("node")
        .arg("audit.mjs")
        .current_dir(&dir)
        .env("DESKGRAPH_AUDIT_URL", format!("{}/graphql", app.base))
        .env("DESKGRAPH_AUDIT_AUTHORIZATION", format!("Bearer {bearer}"))
        .env("DESKGRAPH_AUDIT_ORG_ID", org.id.to_string())
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the audit did not run:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("the audit prints JSON");
    let counts = &report["counts"];
    eprintln!("graphql-http audit: {counts}");
    let mut failed = vec![];
    for result in report["results"].as_array().expect("results") {
        if result["status"] != "ok" {
            eprintln!(
                "{} {} {}: {}\n  {}",
                result["status"],
                result["id"],
                result["name"],
                result["reason"],
                result["exchange"]
            );
        }
        if result["status"] == "warn" || result["status"] == "error" {
            failed.push(format!("{} {}", result["id"], result["name"]));
        }
    }
    assert!(
        failed.is_empty(),
        "the audit's warnings and errors (details above): {failed:#?}"
    );
    assert_eq!(
        (counts["warn"].as_u64(), counts["error"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(counts["ok"].as_u64().unwrap_or(0) > 0, "{counts}");
}

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json; charset=utf-8";
const JSON: &str = "application/json; charset=utf-8";
const GR: &str = "application/graphql-response+json";

fn endpoint(app: &TestApp) -> String {
    format!("{}/graphql", app.base)
}

/// A POST of `body` (JSON) as `caller`, with `accept` when given.
async fn post(app: &TestApp, caller: &Caller, accept: Option<&str>, body: Value) -> RawResponse {
    let mut req = app.http.post(endpoint(app)).json(&body);
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    send_raw(caller.apply(req)).await
}

/// A GET with `params` as `caller`, with `accept` when given.
async fn get(
    app: &TestApp,
    caller: &Caller,
    accept: Option<&str>,
    params: &[(&str, &str)],
) -> RawResponse {
    let mut req = app.http.get(endpoint(app)).query(params);
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    send_raw(caller.apply(req)).await
}

fn assert_shape(case: &str, resp: &RawResponse, status: u16, content_type: &str, data: bool) {
    assert_eq!(resp.status, status, "{case}: {}", resp.text);
    assert_eq!(resp.header("content-type"), Some(content_type), "{case}");
    let body = resp.json();
    assert_eq!(
        body.get("data").is_some(),
        data,
        "{case}: `data` present? {body}"
    );
}

#[tokio::test]
async fn the_response_media_type_follows_accept_with_its_quality_values() {
    let app = TestApp::spawn().await;
    let caller = Caller::user("negotiator");
    for (accept, content_type) in [
        (Some(GR), GRAPHQL_RESPONSE),
        (
            Some("application/graphql-response+json; charset=utf-8"),
            GRAPHQL_RESPONSE,
        ),
        (Some("application/json"), JSON),
        (Some("*/*"), JSON),
        (None, JSON),
        (
            Some("application/graphql-response+json, application/json;q=0.9"),
            GRAPHQL_RESPONSE,
        ),
        (
            Some("application/graphql-response+json;q=0.5, application/json"),
            JSON,
        ),
        (
            Some("application/json;q=0.9, application/graphql-response+json"),
            GRAPHQL_RESPONSE,
        ),
        (Some("text/html,application/xhtml+xml,*/*;q=0.8"), JSON),
    ] {
        let case = format!("Accept: {accept:?}");
        let resp = post(&app, &caller, accept, json!({"query": "{ __typename }"})).await;
        assert_shape(&case, &resp, 200, content_type, true);
        assert_eq!(
            resp.json(),
            json!({"data": {"__typename": "QueryRoot"}}),
            "{case}"
        );
    }
}

#[tokio::test]
async fn an_accept_the_server_cannot_satisfy_is_406() {
    let app = TestApp::spawn().await;
    let caller = Caller::user("picky");
    for accept in [
        "text/html",
        "application/xml, text/*",
        "application/json;q=0",
        "application/json; charset=latin1",
    ] {
        let resp = post(
            &app,
            &caller,
            Some(accept),
            json!({"query": "{ __typename }"}),
        )
        .await;
        assert_shape(accept, &resp, 406, JSON, false);
        assert_eq!(
            error_code(&resp.json()).as_deref(),
            Some("BAD_USER_INPUT"),
            "{accept}"
        );
        let resp = get(&app, &caller, Some(accept), &[("query", "{ __typename }")]).await;
        assert_eq!(resp.status, 406, "GET, {accept}: {}", resp.text);
    }
}

#[tokio::test]
async fn request_errors_are_400_without_data_in_graphql_response_json_and_200_in_json() {
    let app = TestApp::spawn().await;
    let caller = Caller::user("careless");
    let cases = [
        (
            "document that does not parse",
            json!({"query": "{ viewer { role "}),
        ),
        (
            "document that does not validate",
            json!({"query": "{ viewer { secretSql } }"}),
        ),
        (
            "required variable missing",
            json!({"query": "query($t: ID!) { ticket(id: $t) { id } }"}),
        ),
        (
            "required variable null",
            json!({"query": "query($t: ID!) { ticket(id: $t) { id } }", "variables": {"t": null}}),
        ),
        (
            "variable of the wrong type",
            json!({"query": "query($n: Int) { tickets(first: $n) { totalCount } }", "variables": {"n": "many"}}),
        ),
        (
            "unknown operation name",
            json!({"query": "query A { viewer { role } }", "operationName": "B"}),
        ),
        (
            "several operations and no name",
            json!({"query": "query A { viewer { role } } query B { viewer { role } }"}),
        ),
        (
            "over the depth limit",
            json!({"query": format!("{{ __schema {{ queryType {{ fields {{ type {}name{} }} }} }} }}", "{ ofType ".repeat(16), " }".repeat(16))}),
        ),
    ];
    for (case, body) in &cases {
        let strict = post(&app, &caller, Some(GR), body.clone()).await;
        assert_shape(case, &strict, 400, GRAPHQL_RESPONSE, false);
        let legacy = post(&app, &caller, Some("application/json"), body.clone()).await;
        assert_shape(case, &legacy, 200, JSON, false);
        for resp in [&strict, &legacy] {
            assert_eq!(
                error_code(&resp.json()).as_deref(),
                Some("BAD_USER_INPUT"),
                "{case}: {}",
                resp.text
            );
        }
        assert_eq!(strict.json(), legacy.json(), "{case}: the same errors");
    }
}

#[tokio::test]
async fn a_parse_error_says_what_was_expected_and_where() {
    let app = TestApp::spawn().await;
    let resp = post(
        &app,
        &Caller::user("typo"),
        Some(GR),
        json!({"query": "{\n  viewer {\n    role\n"}),
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    assert_eq!(
        resp.json(),
        json!({"errors": [{
            "message": "syntax error: expected selection set, selection, directive, or arguments",
            "locations": [{"line": 4, "column": 1}],
            "extensions": {"code": "BAD_USER_INPUT"},
        }]})
    );
}

#[tokio::test]
async fn execution_errors_are_200_with_data_in_both_media_types() {
    let app = TestApp::spawn().await;
    let caller = Caller::user("hopeful");
    // `ticket` is non-null: its error nulls `data` itself, which is still an executed operation.
    let body = json!({"query": "{ ticket(id: \"not-a-uuid\") { id } }"});
    for (accept, content_type) in [(GR, GRAPHQL_RESPONSE), ("application/json", JSON)] {
        let resp = post(&app, &caller, Some(accept), body.clone()).await;
        assert_shape(accept, &resp, 200, content_type, true);
        let json = resp.json();
        assert!(json["data"].is_null(), "{json}");
        assert_eq!(json["errors"][0]["path"], json!(["ticket"]), "{json}");
    }
}

#[tokio::test]
async fn bodies_that_are_not_graphql_requests_are_400_in_both_media_types() {
    let app = TestApp::spawn().await;
    let caller = Caller::user("sloppy");
    let cases: [(&str, &[u8]); 8] = [
        ("not JSON", b"{ \"not a JSON"),
        ("empty", b""),
        ("no query", br#"{"qeury": "{ __typename }"}"#),
        ("query not a string", br#"{"query": {"obj": "ect"}}"#),
        (
            "operationName not a string",
            br#"{"query": "{ __typename }", "operationName": 0}"#,
        ),
        (
            "variables not a map",
            br#"{"query": "{ __typename }", "variables": "string"}"#,
        ),
        (
            "extensions not a map",
            br#"{"query": "{ __typename }", "extensions": ["array"]}"#,
        ),
        ("a batch", br#"[{"query": "{ __typename }"}]"#),
    ];
    for (case, body) in cases {
        for (accept, content_type) in [(GR, GRAPHQL_RESPONSE), ("application/json", JSON)] {
            let req = app
                .http
                .post(endpoint(&app))
                .header("content-type", "application/json")
                .header("accept", accept)
                .body(body.to_vec());
            let resp = send_raw(caller.apply(req)).await;
            assert_shape(case, &resp, 400, content_type, false);
            assert_eq!(
                error_code(&resp.json()).as_deref(),
                Some("BAD_USER_INPUT"),
                "{case}"
            );
        }
    }
    // `null` is the same as absent.
    let resp = post(
        &app,
        &caller,
        Some(GR),
        json!({"query": "{ __typename }", "operationName": null, "variables": null, "extensions": null}),
    )
    .await;
    assert_shape("nulls", &resp, 200, GRAPHQL_RESPONSE, true);
}

#[tokio::test]
async fn a_post_that_is_not_json_is_415_and_runs_nothing() {
    let app = TestApp::spawn().await;
    let founder = Caller::user("founder");
    let mutation = json!({"query": "mutation { createOrganization(input: {name: \"Via form\", slug: \"via-form\"}) { id } }"})
        .to_string();
    // A browser may send these cross-site without a CORS preflight.
    for content_type in [
        None,
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("application/graphql"),
        Some("application/json; charset=latin1"),
    ] {
        let mut req = app
            .http
            .post(endpoint(&app))
            .header("accept", GR)
            .body(mutation.clone());
        if let Some(content_type) = content_type {
            req = req.header("content-type", content_type);
        }
        let resp = send_raw(founder.apply(req)).await;
        let case = format!("Content-Type: {content_type:?}");
        assert_shape(&case, &resp, 415, GRAPHQL_RESPONSE, false);
        assert_eq!(resp.header("accept"), Some("application/json"), "{case}");
    }
    let orgs = app
        .ok(&founder, "{ organizations { id } }", json!({}))
        .await;
    assert_eq!(orgs["organizations"], json!([]));
    // With its charset spelled out, JSON is fine.
    let req = app
        .http
        .post(endpoint(&app))
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"query": "{ __typename }"}"#);
    assert_eq!(send_raw(founder.apply(req)).await.status, 200);
}

#[tokio::test]
async fn get_runs_queries_and_refuses_mutations_with_405_and_allow_post() {
    let app = TestApp::spawn().await;
    let founder = Caller::user("founder");
    let resp = get(&app, &founder, Some(GR), &[("query", "{ __typename }")]).await;
    assert_shape("query", &resp, 200, GRAPHQL_RESPONSE, true);
    // `operationName` picks the operation, `variables` is JSON.
    let resp = get(
        &app,
        &founder,
        None,
        &[
            (
                "query",
                "query A { a: __typename } query B($n: String!) { __type(name: $n) { name } }",
            ),
            ("operationName", "B"),
            ("variables", r#"{"n": "Ticket"}"#),
        ],
    )
    .await;
    assert_shape("operationName", &resp, 200, JSON, true);
    assert_eq!(resp.json(), json!({"data": {"__type": {"name": "Ticket"}}}));

    for (case, query, name) in [
        (
            "anonymous",
            "mutation { createOrganization(input: {name: \"Via GET\", slug: \"via-get\"}) { id } }",
            None,
        ),
        (
            "named, without operationName",
            "mutation M { createOrganization(input: {name: \"Via GET\", slug: \"via-get\"}) { id } }",
            None,
        ),
        (
            "named",
            "query Q { __typename } mutation M { createOrganization(input: {name: \"Via GET\", slug: \"via-get\"}) { id } }",
            Some("M"),
        ),
    ] {
        let mut params = vec![("query", query)];
        if let Some(name) = name {
            params.push(("operationName", name));
        }
        for accept in [Some(GR), None] {
            let resp = get(&app, &founder, accept, &params).await;
            assert_eq!(resp.status, 405, "{case}: {}", resp.text);
            assert_eq!(resp.header("allow"), Some("POST"), "{case}");
            assert!(resp.json().get("data").is_none(), "{case}");
            assert_eq!(
                error_code(&resp.json()).as_deref(),
                Some("BAD_USER_INPUT"),
                "{case}"
            );
        }
    }
    let orgs = app
        .ok(&founder, "{ organizations { id } }", json!({}))
        .await;
    assert_eq!(orgs["organizations"], json!([]), "a mutation ran over GET");

    // Not GraphQL requests: no query, variables that are not a JSON object.
    for params in [
        &[("operationName", "A")][..],
        &[("query", "{ __typename }"), ("variables", "[1]")][..],
        &[("query", "{ __typename }"), ("extensions", "nope")][..],
    ] {
        let resp = get(&app, &founder, Some(GR), params).await;
        assert_shape(&format!("{params:?}"), &resp, 400, GRAPHQL_RESPONSE, false);
    }
    // Without parameters: GraphiQL for a browser, otherwise not a GraphQL request.
    let resp = get(&app, &founder, Some("application/json"), &[]).await;
    assert_shape("no parameters", &resp, 400, JSON, false);
    let resp = get(&app, &founder, Some("text/html,*/*;q=0.8"), &[]).await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn whole_request_failures_keep_their_status_in_both_media_types() {
    let app = TestApp::spawn().await;
    let outsider = Caller::user("outsider").in_org(uuid::Uuid::new_v4());
    for (accept, content_type) in [(GR, GRAPHQL_RESPONSE), ("application/json", JSON)] {
        let resp = post(
            &app,
            &Caller::anonymous(),
            Some(accept),
            json!({"query": "{ __typename }"}),
        )
        .await;
        assert_shape(accept, &resp, 401, content_type, false);
        assert_eq!(error_code(&resp.json()).as_deref(), Some("UNAUTHENTICATED"));
        // Authentication comes before the document is looked at.
        let resp = post(
            &app,
            &Caller::anonymous(),
            Some(accept),
            json!({"query": "{"}),
        )
        .await;
        assert_eq!(resp.status, 401, "{}", resp.text);
        let resp = post(
            &app,
            &outsider,
            Some(accept),
            json!({"query": "{ __typename }"}),
        )
        .await;
        assert_shape(accept, &resp, 403, content_type, false);
    }
}

#[tokio::test]
async fn a_cached_analyst_get_keeps_its_media_type_and_a_tag_per_representation() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let hash = hex::encode(Sha256::digest(persisted("workspaces").as_bytes()));
    let pq = json!({"persistedQuery": {"version": 1, "sha256Hash": hash}}).to_string();
    let params = [("extensions", pq.as_str())];
    let strict = get(&app, &org.analyst_key, Some(GR), &params).await;
    assert_shape(
        "graphql-response+json",
        &strict,
        200,
        GRAPHQL_RESPONSE,
        true,
    );
    let legacy = get(&app, &org.analyst_key, Some("application/json"), &params).await;
    assert_shape("json", &legacy, 200, JSON, true);
    assert_eq!(strict.text, legacy.text, "the same data");
    let (strict_tag, legacy_tag) = (
        strict.header("etag").unwrap(),
        legacy.header("etag").unwrap(),
    );
    assert_ne!(strict_tag, legacy_tag, "one tag per representation");
    assert!(strict.header("vary").unwrap_or_default().contains("Accept"));
    let again = send_raw(
        org.analyst_key.apply(
            app.http
                .get(endpoint(&app))
                .query(&params)
                .header("accept", GR)
                .header("if-none-match", strict_tag),
        ),
    )
    .await;
    assert_eq!(again.status, 304, "{}", again.text);
}

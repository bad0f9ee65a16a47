//! The limits stop abusive queries but not the tools people use: GraphiQL's introspection query
//! (as graphql-js `getIntrospectionQuery()` writes it) fits within the default depth and complexity.

use serde_json::json;

use crate::common::{Caller, TestApp};

const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description
    args { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name } } } } } } }
}
"#;

#[tokio::test]
async fn graphiql_introspection_fits_the_default_limits() {
    let app = TestApp::spawn().await;
    let data = app.ok(&Caller::user("dev"), INTROSPECTION, json!({})).await;
    let types = data["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Ticket"));
    assert_eq!(data["__schema"]["mutationType"]["name"], "MutationRoot");
}

#[tokio::test]
async fn nested_pages_that_multiply_past_the_complexity_limit_are_refused() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post(
            &Caller::user("dev"),
            "{ tickets(first: 100) { edges { node { comments(first: 100) { edges { node { body } } } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(
        crate::common::error_code(&body).as_deref(),
        Some("BAD_USER_INPUT")
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("complex"),
        "{body}"
    );
}

#[tokio::test]
async fn an_organization_over_its_rate_limit_gets_429_and_others_do_not() {
    let mut cfg = crate::common::server_config();
    cfg.rate_limit_per_minute = 20;
    let app = TestApp::spawn_with(cfg).await;
    let a = crate::common::org_fixture(&app, "acme").await;
    let b = crate::common::org_fixture(&app, "globex").await;
    // The fixtures spent part of each budget; spend the rest of A's.
    let mut limited = None;
    for _ in 0..25 {
        let resp = a
            .viewer
            .apply(app.http.post(format!("{}/graphql", app.base)))
            .json(&json!({"query": "{ viewer { role } }"}));
        let raw = crate::common::send_raw(resp).await;
        if raw.status == 429 {
            limited = Some(raw);
            break;
        }
        assert_eq!(raw.status, 200, "{}", raw.text);
    }
    let raw = limited.expect("A was never rate limited");
    assert_eq!(
        crate::common::error_code(&raw.json()).as_deref(),
        Some("RATE_LIMITED")
    );
    let retry: u64 = raw
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry >= 1);
    // Every member of A shares the budget; B's is untouched.
    let (status, _) = app.post(&a.owner, "{ viewer { role } }", json!({})).await;
    assert_eq!(status, 429);
    app.ok(&b.viewer, "{ viewer { role } }", json!({})).await;
}

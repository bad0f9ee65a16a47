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

/// A page past the cap is the client's to fix, so the answer names `first`: a list's complexity
/// counts at most the largest page, which lets validation pass and the resolver refuse the size.
#[tokio::test]
async fn a_page_size_far_past_the_cap_is_refused_naming_first_not_as_too_complex() {
    let app = TestApp::spawn().await;
    let org = crate::common::org_fixture(&app, "acme").await;
    for (case, query) in [
        (
            "tickets",
            "query($t: ID!) { ticket(id: $t) { id } tickets(first: 100000) { totalCount edges { node { id title status workspace { name } } } } }",
        ),
        (
            "comments",
            "query($t: ID!) { ticket(id: $t) { comments(first: 100000) { edges { node { body internal } } } } }",
        ),
        (
            "members",
            "query($t: ID!) { ticket(id: $t) { id } members(first: 100000) { edges { node { role user { name } } } } }",
        ),
        (
            "ledger",
            "query($t: ID!) { ticket(id: $t) { id } credits { ledger(first: 100000) { edges { node { kind amount } } } } }",
        ),
        (
            "audit log",
            "query($t: ID!) { ticket(id: $t) { id } auditLog(first: 100000) { edges { node { seq action } } } }",
        ),
        (
            "analyses",
            "query($t: ID!) { ticket(id: $t) { analyses(first: 100000) { status summary } } }",
        ),
    ] {
        let (status, body) = app.post(&org.owner, query, json!({"t": org.ticket})).await;
        assert_eq!(status, 200, "{case}: {body}");
        let errors = body["errors"].as_array().expect("an error");
        assert_eq!(errors.len(), 1, "{case}: {body}");
        assert_eq!(
            crate::common::error_code(&body).as_deref(),
            Some("BAD_USER_INPUT"),
            "{case}: {body}"
        );
        assert_eq!(errors[0]["extensions"]["field"], "first", "{case}: {body}");
        let message = errors[0]["message"].as_str().unwrap();
        assert!(message.contains("between 1 and 100"), "{case}: {body}");
        assert!(!message.contains("complex"), "{case}: {body}");
    }
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

/// Counts (accepted, refused) of `n` `viewer` queries by `caller`, sent round-robin to `bases`.
async fn spend(
    http: &reqwest::Client,
    bases: &[&str],
    caller: &crate::common::Caller,
    n: usize,
) -> (usize, usize) {
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..n {
        let base = bases[i % bases.len()];
        let req = caller
            .apply(http.post(format!("{base}/graphql")))
            .json(&json!({"query": "{ viewer { role } }"}));
        let raw = crate::common::send_raw(req).await;
        match raw.status {
            200 => accepted += 1,
            429 => refused += 1,
            other => panic!("unexpected status {other}: {}", raw.text),
        }
    }
    (accepted, refused)
}

/// Polls `f` until it holds (a heartbeat is a second apart here), for at most 20 s.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_instances_share_one_fleet_wide_limit_and_one_takes_it_all_when_the_other_stops() {
    // Fixtures through a server of its own with no limit and no announcements (not in the fleet).
    let app = TestApp::spawn().await;
    let org = crate::common::org_fixture(&app, "acme").await;
    let other = crate::common::org_fixture(&app, "globex").await;

    let mut cfg = crate::common::server_config();
    cfg.rate_limit_per_minute = 120;
    cfg.instance_heartbeat_secs = 1;
    let start = || async {
        let state =
            deskgraph::app::build_state(&app.db.db_config(), &cfg, deskgraph::ai::Ai::builtin())
                .await
                .expect("state");
        deskgraph::app::Server::start(state, &cfg)
            .await
            .expect("server starts")
    };
    let a = start().await;
    let b = start().await;
    let (base_a, base_b) = (format!("http://{}", a.addr), format!("http://{}", b.addr));
    let (limit_a, limit_b) = (
        a.state.engine.rate_limiter.clone(),
        b.state.engine.rate_limiter.clone(),
    );
    eventually("both instances hear of each other", || {
        limit_a.instances() == 2 && limit_b.instances() == 2
    })
    .await;
    assert_eq!((limit_a.share(), limit_b.share()), (60, 60));
    let metrics = app
        .http
        .get(format!("{base_a}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("deskgraph_rate_limit_share_per_minute 60"),
        "{metrics}"
    );
    assert!(metrics.contains("deskgraph_fleet_instances 2"), "{metrics}");

    // 400 requests spread over both within a few seconds: the fleet lets about 120 through (one
    // burst of 60 per instance, plus what refills meanwhile at 2 a second), not 240.
    let started = std::time::Instant::now();
    let (accepted, refused) = spend(&app.http, &[&base_a, &base_b], &org.agent, 400).await;
    let refill = (started.elapsed().as_secs() as usize + 1) * 2 + 2;
    eprintln!(
        "two instances: {accepted} accepted, {refused} refused in {:?}",
        started.elapsed()
    );
    assert!(
        accepted >= 120 && accepted <= 120 + refill,
        "{accepted} accepted, refill {refill}"
    );
    assert_eq!(accepted + refused, 400);

    // B stops (and leaves): A takes the whole limit at its next heartbeat. What Acme spent stays
    // spent (rebalancing hands out no fresh burst); another organization gets the whole 120 on A
    // alone, where it would have got 60 before.
    b.stop().await.expect("B stops");
    eventually("A takes the whole limit", || {
        limit_a.instances() == 1 && limit_a.share() == 120
    })
    .await;
    let (accepted, _) = spend(&app.http, &[&base_a], &org.agent, 20).await;
    assert!(
        accepted <= 10,
        "Acme's spent budget came back: {accepted} of 20 accepted"
    );
    let started = std::time::Instant::now();
    let (accepted, refused) = spend(&app.http, &[&base_a], &other.agent, 200).await;
    let refill = (started.elapsed().as_secs() as usize + 1) * 2 + 2;
    eprintln!(
        "one instance: {accepted} accepted, {refused} refused in {:?}",
        started.elapsed()
    );
    assert!(
        accepted >= 120 && accepted <= 120 + refill,
        "{accepted} accepted, refill {refill}"
    );
    a.stop().await.expect("A stops");
}

#[tokio::test]
async fn an_instance_that_dies_without_leaving_is_forgotten_after_three_heartbeats() {
    let app = TestApp::spawn().await;
    let limiter = std::sync::Arc::new(deskgraph::ratelimit::OrgRateLimiter::new(100));
    let pool = app.db.runtime_pool(2);
    let live = deskgraph::ratelimit::Fleet::join(
        pool.clone(),
        limiter.clone(),
        std::time::Duration::from_secs(1),
    )
    .await;
    // A second member whose process "dies": its heartbeat task is gone and it never leaves.
    let other = std::sync::Arc::new(deskgraph::ratelimit::OrgRateLimiter::new(100));
    let dead =
        deskgraph::ratelimit::Fleet::join(pool.clone(), other, std::time::Duration::from_secs(1))
            .await;
    eventually("the first member hears of the second", || {
        limiter.instances() == 2
    })
    .await;
    assert_eq!(limiter.share(), 50);
    dead.abandon();
    eventually("the dead member expires", || limiter.instances() == 1).await;
    assert_eq!(limiter.share(), 100);
    live.leave().await;
}

#[tokio::test]
async fn only_the_servers_own_work_may_announce_instances() {
    let app = TestApp::spawn().await;
    let org = crate::common::org_fixture(&app, "acme").await;
    let pool = app.db.runtime_pool(1);
    let tx = crate::common::trusted_tx(
        &pool,
        Some(org.id),
        Some(deskgraph::authz::Role::Owner),
        deskgraph::db::Access::ReadWrite,
    )
    .await;
    let err = tx
        .query_one(
            "select auth_private.instance_heartbeat(gen_random_uuid(), 5)",
            &[],
        )
        .await
        .expect_err("an owner's transaction may not announce instances");
    assert_eq!(
        crate::common::sql_state(&err),
        Some(tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
}

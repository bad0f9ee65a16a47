//! Bad input: invalid ids, empty or over-long fields, page sizes over the cap, unknown enum values,
//! malformed or oversized bodies, queries over the depth and complexity limits — each a clear
//! BAD_USER_INPUT, nothing written, and no SQL or internal text in any response.

use serde_json::{Value, json};

use crate::common::{Caller, OrgFixture, TestApp, error_code, org_fixture, send_raw};

/// What the operations below could change, read by the owner.
async fn state(app: &TestApp, org: &OrgFixture) -> Value {
    app.ok(
        &org.owner,
        r#"query($t: ID!) {
            tickets(first: 100) { totalCount edges { node { id title } } }
            ticket(id: $t) { title description status priority requesterEmail commentCount updatedAt }
            workspaces { id name }
            organizations { id slug }
        }"#,
        json!({"t": org.ticket}),
    )
    .await
}

fn assert_bad_input(case: &str, body: &Value, field: Option<&str>) {
    assert_eq!(
        error_code(body).as_deref(),
        Some("BAD_USER_INPUT"),
        "{case}: {body}"
    );
    if let Some(field) = field {
        assert_eq!(
            body["errors"][0]["extensions"]["field"], field,
            "{case}: {body}"
        );
    }
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{case}: an error says what is wrong");
}

#[tokio::test]
async fn invalid_arguments_are_bad_user_input_and_write_nothing() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let before = state(&app, &org).await;
    let ws = org.workspace.as_str();
    let t = org.ticket.as_str();
    let long_title = "t".repeat(201);
    let long_text = "d".repeat(20_001);

    const CREATE: &str = "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }";
    const UPDATE: &str =
        "mutation($t: ID!, $i: UpdateTicketInput!) { updateTicket(id: $t, input: $i) { id } }";
    const COMMENT: &str = "mutation($i: AddCommentInput!) { addComment(input: $i) { id } }";

    let cases: Vec<(&str, &str, Value, Option<&str>)> = vec![
        (
            "ticket with a non-uuid id",
            "{ ticket(id: \"nope\") { id } }",
            json!({}),
            Some("id"),
        ),
        (
            "updateTicket with a non-uuid id",
            "mutation { updateTicket(id: \"1\", input: {title: \"x\"}) { id } }",
            json!({}),
            Some("id"),
        ),
        (
            "createTicket with a non-uuid workspace",
            CREATE,
            json!({"i": {"workspaceId": "ws-1", "title": "x"}}),
            Some("workspaceId"),
        ),
        (
            "addComment with a non-uuid ticket",
            COMMENT,
            json!({"i": {"ticketId": "42", "body": "x"}}),
            Some("ticketId"),
        ),
        (
            "tickets filtered by a non-uuid workspace",
            "{ tickets(filter: {workspaceId: \"x\"}) { totalCount } }",
            json!({}),
            Some("workspaceId"),
        ),
        (
            "empty title",
            CREATE,
            json!({"i": {"workspaceId": ws, "title": ""}}),
            Some("title"),
        ),
        (
            "whitespace title",
            CREATE,
            json!({"i": {"workspaceId": ws, "title": "   \t "}}),
            Some("title"),
        ),
        (
            "title of 201 characters",
            CREATE,
            json!({"i": {"workspaceId": ws, "title": long_title}}),
            Some("title"),
        ),
        (
            "title of 201 multi-byte characters",
            CREATE,
            json!({"i": {"workspaceId": ws, "title": "é".repeat(201)}}),
            Some("title"),
        ),
        (
            "description of 20,001 characters",
            CREATE,
            json!({"i": {"workspaceId": ws, "title": "ok", "description": long_text}}),
            Some("description"),
        ),
        (
            "invalid requester e-mail",
            CREATE,
            json!({"i": {"workspaceId": ws, "title": "ok", "requesterEmail": "not an email"}}),
            Some("requesterEmail"),
        ),
        (
            "requester e-mail without a domain",
            CREATE,
            json!({"i": {"workspaceId": ws, "title": "ok", "requesterEmail": "someone@"}}),
            Some("requesterEmail"),
        ),
        (
            "updateTicket to an empty title",
            UPDATE,
            json!({"t": t, "i": {"title": " "}}),
            Some("title"),
        ),
        (
            "updateTicket to a title of 201 characters",
            UPDATE,
            json!({"t": t, "i": {"title": long_title}}),
            Some("title"),
        ),
        (
            "updateTicket to a description of 20,001 characters",
            UPDATE,
            json!({"t": t, "i": {"description": long_text}}),
            Some("description"),
        ),
        (
            "updateTicket with a non-uuid assignee",
            UPDATE,
            json!({"t": t, "i": {"assigneeId": "bob"}}),
            Some("assigneeId"),
        ),
        (
            "comment of 20,001 characters",
            COMMENT,
            json!({"i": {"ticketId": t, "body": long_text}}),
            Some("body"),
        ),
        (
            "empty comment",
            COMMENT,
            json!({"i": {"ticketId": t, "body": ""}}),
            Some("body"),
        ),
        (
            "whitespace comment",
            COMMENT,
            json!({"i": {"ticketId": t, "body": "  \n "}}),
            Some("body"),
        ),
        (
            "page size 101",
            "{ tickets(first: 101) { totalCount } }",
            json!({}),
            Some("first"),
        ),
        (
            "page size 0",
            "{ tickets(first: 0) { totalCount } }",
            json!({}),
            Some("first"),
        ),
        (
            "negative page size",
            "{ tickets(first: -1) { totalCount } }",
            json!({}),
            Some("first"),
        ),
        (
            "comment page size 101",
            "query($t: ID!) { ticket(id: $t) { comments(first: 101) { edges { cursor } } } }",
            json!({"t": t}),
            Some("first"),
        ),
        (
            "member page size 101",
            "{ members(first: 101) { totalCount } }",
            json!({}),
            Some("first"),
        ),
        (
            "garbage after cursor",
            "{ tickets(after: \"garbage\") { totalCount } }",
            json!({}),
            Some("after"),
        ),
        (
            "garbage comment cursor",
            "query($t: ID!) { ticket(id: $t) { comments(after: \"zz\") { edges { cursor } } } }",
            json!({"t": t}),
            Some("after"),
        ),
        (
            "unknown status inline",
            "mutation($t: ID!) { updateTicket(id: $t, input: {status: FOO}) { id } }",
            json!({"t": t}),
            None,
        ),
        (
            "unknown status as a variable",
            "mutation($t: ID!, $s: TicketStatus) { updateTicket(id: $t, input: {status: $s}) { id } }",
            json!({"t": t, "s": "FOO"}),
            None,
        ),
        (
            "unknown priority in an input variable",
            CREATE,
            json!({"i": {"workspaceId": ws, "title": "ok", "priority": "URGENT"}}),
            None,
        ),
        (
            "unknown status in a filter",
            "{ tickets(filter: {status: FOO}) { totalCount } }",
            json!({}),
            None,
        ),
        (
            "lower-case enum value",
            "mutation($t: ID!) { updateTicket(id: $t, input: {status: closed}) { id } }",
            json!({"t": t}),
            None,
        ),
        (
            "unknown field",
            "{ tickets { totalCount secretSql } }",
            json!({}),
            None,
        ),
        (
            "missing required argument",
            "mutation { createTicket(input: {title: \"no workspace\"}) { id } }",
            json!({}),
            None,
        ),
        (
            "document that does not parse",
            "{ tickets { ",
            json!({}),
            None,
        ),
    ];
    for (case, query, vars, field) in &cases {
        let (_, body) = app.post(&org.owner, query, vars.clone()).await;
        assert_bad_input(case, &body, *field);
        assert!(
            body["data"].is_null()
                || body["data"]
                    .as_object()
                    .is_some_and(|d| d.values().all(Value::is_null)),
            "{case}: {body}"
        );
        assert_eq!(state(&app, &org).await, before, "{case} wrote something");
    }
}

#[tokio::test]
async fn lengths_at_the_limits_are_accepted() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let title = "é".repeat(200);
    let data = app
        .ok(
            &org.agent,
            "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id title description } }",
            json!({"i": {"workspaceId": org.workspace, "title": title, "description": "d".repeat(20_000)}}),
        )
        .await;
    assert_eq!(data["createTicket"]["title"], title.as_str());
    assert_eq!(
        data["createTicket"]["description"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        20_000
    );
    let data = app
        .ok(
            &org.agent,
            "mutation($t: ID!, $b: String!) { addComment(input: {ticketId: $t, body: $b}) { id } }",
            json!({"t": org.ticket, "b": "c".repeat(20_000)}),
        )
        .await;
    assert!(data["addComment"]["id"].is_string());
    let data = app
        .ok(
            &org.owner,
            "query($t: ID!) { tickets(first: 100) { totalCount } ticket(id: $t) { commentCount } }",
            json!({"t": org.ticket}),
        )
        .await;
    assert_eq!(data["tickets"]["totalCount"], 2);
    assert_eq!(data["ticket"]["commentCount"], 2);
}

#[tokio::test]
async fn malformed_batched_and_oversized_bodies_are_rejected_with_400_and_413() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let before = state(&app, &org).await;
    let url = format!("{}/graphql", app.base);
    let post = |body: Vec<u8>| {
        org.owner.apply(
            app.http
                .post(&url)
                .header("content-type", "application/json")
                .body(body),
        )
    };

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated JSON", b"{\"query\":".to_vec()),
        ("not JSON at all", b"query { viewer { role } }".to_vec()),
        ("empty body", Vec::new()),
        (
            "batch",
            br#"[{"query":"{ viewer { role } }"},{"query":"mutation { createWorkspace(input: {name: \"Batch\"}) { id } }"}]"#.to_vec(),
        ),
        ("query of the wrong type", br#"{"query": 42}"#.to_vec()),
        ("invalid UTF-8", b"{\"query\":\"\xff\xfe\"}".to_vec()),
    ];
    for (case, body) in cases {
        let resp = send_raw(post(body)).await;
        assert_eq!(resp.status, 400, "{case}: {}", resp.text);
        let json = resp.json();
        assert_bad_input(case, &json, None);
        assert!(json["data"].is_null(), "{case}");
    }

    // Over the 1 MiB limit: refused before it is parsed.
    let pad = "x".repeat(1_100_000);
    let body = serde_json::to_vec(&json!({
        "query": "mutation($pad: String!) { createWorkspace(input: {name: $pad}) { id } }",
        "variables": {"pad": pad},
    }))
    .unwrap();
    let resp = send_raw(post(body)).await;
    assert_eq!(resp.status, 413, "{}", resp.text);
    assert_bad_input("oversized body", &resp.json(), None);

    assert_eq!(state(&app, &org).await, before);
}

#[tokio::test]
async fn queries_over_the_depth_or_complexity_limit_get_bad_user_input_and_no_data() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;

    // 20 levels through introspection (the API's own types do not nest that deep).
    let deep = format!(
        "{{ __schema {{ queryType {{ fields {{ type {}name{} }} }} }} }}",
        "{ ofType ".repeat(16),
        " }".repeat(16)
    );
    let complex = "{ tickets(first: 100) { edges { node { comments(first: 100) { edges { node { body } } } } } } }";
    for (case, query) in [("depth", deep.as_str()), ("complexity", complex)] {
        let (_, body) = app.post(&org.owner, query, json!({})).await;
        assert_bad_input(case, &body, None);
        assert!(body["data"].is_null(), "{case}: {body}");
    }
    // Just within the limits, the same shapes run.
    let shallow = "{ __schema { queryType { fields { type { ofType { name } } } } } }";
    app.ok(&org.owner, shallow, json!({})).await;
    let modest = "{ tickets(first: 10) { edges { node { comments(first: 10) { edges { node { body } } } } } } }";
    let data = app.ok(&org.owner, modest, json!({})).await;
    assert_eq!(data["tickets"]["edges"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_mutation_sent_with_get_is_refused_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let before = state(&app, &org).await;
    let url = reqwest::Url::parse_with_params(
        &format!("{}/graphql", app.base),
        &[(
            "query",
            "mutation { createWorkspace(input: {name: \"Via GET\"}) { id } }",
        )],
    )
    .unwrap();
    let resp = send_raw(org.owner.apply(app.http.get(url))).await;
    // GraphQL over HTTP: 405, naming the method that would do.
    assert_eq!(resp.status, 405, "{}", resp.text);
    assert_eq!(resp.header("allow"), Some("POST"));
    let body = resp.json();
    assert_bad_input("mutation via GET", &body, None);
    assert!(body["data"].is_null());
    assert_eq!(state(&app, &org).await, before);
}

#[tokio::test]
async fn organization_slugs_must_be_well_formed_and_unique() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let founder = Caller::user("founder");
    const CREATE: &str = "mutation($n: String!, $s: String!) { createOrganization(input: {name: $n, slug: $s}) { id slug } }";
    let forty = "a".repeat(40);
    let forty_one = "a".repeat(41);
    for slug in [
        "Acme",
        "-acme",
        "acme-",
        "ac me",
        "acmé",
        "acme_co",
        "",
        forty_one.as_str(),
        // Taken by the fixture.
        "acme",
        // Taken, after trimming.
        " acme ",
    ] {
        let (_, body) = app
            .post(&founder, CREATE, json!({"n": "Founder Inc", "s": slug}))
            .await;
        assert_bad_input(&format!("slug {slug:?}"), &body, Some("slug"));
        let orgs = app
            .ok(&founder, "{ organizations { id } }", json!({}))
            .await;
        assert_eq!(
            orgs["organizations"],
            json!([]),
            "slug {slug:?} created one"
        );
    }
    for name in ["", "   ", &"n".repeat(101)] {
        let (_, body) = app
            .post(&founder, CREATE, json!({"n": name, "s": "fine"}))
            .await;
        assert_bad_input(&format!("name {name:?}"), &body, Some("name"));
    }
    // The limits themselves are fine, and the taken slug still belongs to the first org.
    let data = app
        .ok(&founder, CREATE, json!({"n": "Forty", "s": forty}))
        .await;
    assert_eq!(data["createOrganization"]["slug"], forty.as_str());
    let data = app
        .ok(&org.owner, "{ organization { slug } }", json!({}))
        .await;
    assert_eq!(data["organization"]["slug"], "acme");
}

#[tokio::test]
async fn a_duplicate_or_empty_workspace_name_is_bad_user_input() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    const CREATE: &str = "mutation($n: String!) { createWorkspace(input: {name: $n}) { id } }";
    for name in ["Support", " Support ", "", "  ", &"w".repeat(101)] {
        let (_, body) = app.post(&org.admin, CREATE, json!({"n": name})).await;
        assert_bad_input(&format!("workspace {name:?}"), &body, Some("name"));
    }
    let data = app
        .ok(&org.owner, "{ workspaces { name } }", json!({}))
        .await;
    assert_eq!(data["workspaces"], json!([{"name": "Support"}]));
}

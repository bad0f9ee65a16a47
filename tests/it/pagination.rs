//! Keyset pagination: walking every page of every order visits each ticket exactly once, in order;
//! cursors are bound to their order; rows made in one operation keep the order they were made in.

use serde_json::{Value, json};

use crate::common::{TestApp, org_fixture};

async fn walk(
    app: &TestApp,
    caller: &crate::common::Caller,
    field: &str,
    direction: &str,
) -> Vec<Value> {
    let mut after: Option<String> = None;
    let mut seen = vec![];
    loop {
        let data = app
            .ok(
                caller,
                "query($after: String, $o: TicketOrder) { tickets(first: 7, after: $after, orderBy: $o) {
                    pageInfo { hasNextPage endCursor } edges { node { id number priority createdAt } } } }",
                json!({"after": after, "o": {"field": field, "direction": direction}}),
            )
            .await;
        let page = &data["tickets"];
        seen.extend(
            page["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            return seen;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
}

#[tokio::test]
async fn every_order_pages_through_each_ticket_exactly_once_and_in_order() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    // 30 tickets in one operation (equal transaction start times) plus the fixture's one.
    let mut doc = String::from("mutation {");
    for i in 0..30 {
        let priority = ["LOW", "MEDIUM", "HIGH", "CRITICAL"][i % 4];
        doc += &format!(
            " t{i}: createTicket(input: {{workspaceId: \"{}\", title: \"T{i}\", priority: {priority}}}) {{ id }}",
            org.workspace
        );
    }
    doc += " }";
    app.ok(&org.agent, &doc, json!({})).await;

    for (field, direction) in [
        ("CREATED_AT", "DESC"),
        ("CREATED_AT", "ASC"),
        ("NUMBER", "ASC"),
        ("PRIORITY", "DESC"),
        ("UPDATED_AT", "DESC"),
    ] {
        let seen = walk(&app, &org.agent, field, direction).await;
        let mut ids: Vec<&str> = seen.iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 31, "{field} {direction}");
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 31, "{field} {direction}: a ticket came twice");
        let numbers: Vec<i64> = seen.iter().map(|t| t["number"].as_i64().unwrap()).collect();
        match (field, direction) {
            // Creation order is number order, also within one operation.
            ("CREATED_AT", "DESC") | ("UPDATED_AT", "DESC") => assert!(
                numbers.windows(2).all(|w| w[0] > w[1]),
                "{field}: {numbers:?}"
            ),
            ("CREATED_AT", "ASC") | ("NUMBER", "ASC") => assert!(
                numbers.windows(2).all(|w| w[0] < w[1]),
                "{field}: {numbers:?}"
            ),
            _ => {
                let rank = |p: &Value| {
                    ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
                        .iter()
                        .position(|x| p == x)
                        .unwrap()
                };
                assert!(
                    seen.windows(2)
                        .all(|w| rank(&w[0]["priority"]) >= rank(&w[1]["priority"]))
                );
            }
        }
    }
}

#[tokio::test]
async fn a_cursor_from_a_list_in_another_order_is_bad_input_and_spoils_nothing() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let data = app
        .ok(
            &org.agent,
            "{ tickets(first: 1) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let cursor = data["tickets"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = app
        .post(
            &org.agent,
            "query($c: String) { tickets(first: 5, after: $c, orderBy: {field: PRIORITY}) { totalCount } members { totalCount } }",
            json!({"c": cursor}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["field"], "after");
    // The bad cursor never reached SQL, so the rest of the operation still ran.
    assert_eq!(body["data"]["members"]["totalCount"], 4, "{body}");
}

#[tokio::test]
async fn comments_added_in_one_operation_keep_their_order() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let mut doc = String::from("mutation {");
    for i in 0..10 {
        doc += &format!(
            " c{i}: addComment(input: {{ticketId: \"{}\", body: \"reply {i}\"}}) {{ id }}",
            org.ticket
        );
    }
    doc += " }";
    app.ok(&org.agent, &doc, json!({})).await;
    let data = app
        .ok(&org.agent, "query($t: ID!) { ticket(id: $t) { comments(first: 3) { edges { node { body } } pageInfo { endCursor } } } }", json!({"t": org.ticket}))
        .await;
    let mut bodies: Vec<String> = vec![];
    let mut page = data["ticket"]["comments"].clone();
    loop {
        bodies.extend(
            page["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["body"].as_str().unwrap().to_owned()),
        );
        let Some(after) = page["pageInfo"]["endCursor"].as_str().map(str::to_owned) else {
            break;
        };
        let next = app
            .ok(&org.agent, "query($t: ID!, $a: String) { ticket(id: $t) { comments(first: 3, after: $a) { edges { node { body } } pageInfo { endCursor } } } }", json!({"t": org.ticket, "a": after}))
            .await;
        page = next["ticket"]["comments"].clone();
        if page["edges"].as_array().unwrap().is_empty() {
            break;
        }
    }
    let expected: Vec<String> = std::iter::once("acme internal note".to_owned())
        .chain((0..10).map(|i| format!("reply {i}")))
        .collect();
    assert_eq!(bodies, expected);
}

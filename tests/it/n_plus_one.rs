//! N+1: a list of tickets with `workspace`, `assignee` and `commentCount` and `analysis` costs the same number of SQL
//! statements whatever its length (DataLoaders batch per key type on the operation's transaction).

use async_graphql::Request;
use deskgraph::authz::Role;
use deskgraph::db::{Access, Credentials};
use deskgraph::support::repo::{NewTicket, insert_comment, insert_ticket};
use deskgraph::support::{TicketPriority, TicketStatus};
use serde_json::json;
use uuid::Uuid;

use crate::common::{TestApp, org_fixture, trusted_tx};

const LIST: &str = "query($n: Int!) { tickets(first: $n) { edges { node { id title workspace { name } assignee { name } commentCount analysis { status summary } } } } }";

#[tokio::test]
async fn listing_fifty_tickets_issues_as_many_statements_as_listing_five() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let pool = app.db.runtime_pool(1);
    let tx = trusted_tx(&pool, Some(org.id), Some(Role::Owner), Access::ReadWrite).await;
    let workspace: Uuid = org.workspace.parse().unwrap();
    let assignees = [org.owner.user_id, org.admin.user_id, org.agent.user_id];
    for i in 0..60 {
        let t = insert_ticket(
            &tx,
            &NewTicket {
                workspace_id: workspace,
                title: &format!("Ticket {i}"),
                description: "",
                requester_email: None,
                priority: TicketPriority::Medium,
                priority_source: deskgraph::support::PrioritySource::Human,
                status: TicketStatus::Open,
                assignee_id: assignees[i % 3],
                created_by: None,
            },
        )
        .await
        .unwrap();
        for _ in 0..(i % 3) {
            insert_comment(&tx, t.id, org.agent.user_id, None, "a reply", false)
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();

    let state = app.state();
    let mut counts = vec![];
    for n in [5, 50] {
        let creds = Credentials::User {
            subject: org.agent.subject.clone(),
            email: None,
            email_verified: None,
            name: None,
            org_id: Some(org.id),
        };
        let request =
            Request::new(LIST).variables(async_graphql::Variables::from_json(json!({"n": n})));
        let outcome = state
            .engine
            .execute(creds, request, false, None, None)
            .await;
        assert!(
            outcome.response.errors.is_empty(),
            "{:?}",
            outcome.response.errors
        );
        let data = outcome.response.data.into_json().unwrap();
        let edges = data["tickets"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), n as usize);
        assert!(
            edges
                .iter()
                .all(|e| e["node"]["workspace"]["name"] == "Support")
        );
        assert!(
            edges
                .iter()
                .any(|e| e["node"]["commentCount"].as_i64().unwrap() > 0)
        );
        assert!(edges.iter().all(|e| !e["node"]["assignee"].is_null()));
        counts.push(outcome.statements);
    }
    assert_eq!(
        counts[0], counts[1],
        "statements for 5 vs 50 tickets: {counts:?}"
    );
    // BEGIN, caller + context, READ ONLY (one round trip); the page; one batch per loader
    // (workspaces, users, comment counts, latest analyses); COMMIT.
    assert_eq!(counts[1], 9, "statements: {counts:?}");
}

//! Tenant isolation through the API: for every query and mutation, a member or API key of org B
//! acting on org A's ids gets nothing of A and changes nothing of A — and gets exactly the answer a
//! non-existent id gets.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{Caller, OrgFixture, TestApp, org_fixture};

/// Errors without `path`/`locations`, to compare "another org's id" with "no such id".
fn errors_only(body: &Value) -> Value {
    let mut errors = body["errors"].clone();
    if let Some(list) = errors.as_array_mut() {
        for e in list {
            if let Some(o) = e.as_object_mut() {
                o.remove("locations");
            }
        }
    }
    json!({"data": body["data"], "errors": errors})
}

async fn snapshot_of(app: &TestApp, a: &OrgFixture) -> Value {
    app.ok(
        &a.owner,
        r#"query($t: ID!) {
            ticket(id: $t) { title description status priority assignee { id } commentCount updatedAt }
            members(first: 100) { totalCount edges { node { role user { id } } } }
            workspaces { id name }
            apiKeys { id revokedAt }
            tickets(first: 100) { totalCount }
            organization { name slug }
        }"#,
        json!({"t": a.ticket}),
    )
    .await
}

/// Each case: an operation with `$id` standing for a target id, run with A's id and with a random one.
const ID_CASES: &[(&str, &str)] = &[
    ("ticket", "query($id: ID!) { ticket(id: $id) { id title } }"),
    (
        "workspace",
        "query($id: ID!) { workspace(id: $id) { id name } }",
    ),
    (
        "updateTicket",
        "mutation($id: ID!) { updateTicket(id: $id, input: {title: \"pwned\", status: CLOSED}) { id } }",
    ),
    (
        "addComment",
        "mutation($id: ID!) { addComment(input: {ticketId: $id, body: \"pwned\"}) { id } }",
    ),
    (
        "createTicket",
        "mutation($id: ID!) { createTicket(input: {workspaceId: $id, title: \"pwned\"}) { id } }",
    ),
    (
        "updateMemberRole",
        "mutation($id: ID!) { updateMemberRole(input: {userId: $id, role: VIEWER}) { role } }",
    ),
    (
        "removeMember",
        "mutation($id: ID!) { removeMember(userId: $id) }",
    ),
    (
        "revokeApiKey",
        "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
    ),
    (
        "assign to A's member",
        "mutation($id: ID!) { updateTicket(id: $id, input: {assigneeId: $id}) { id } }",
    ),
];

fn target_in_a<'a>(case: &str, a: &'a OrgFixture, a_agent_user: &'a str) -> &'a str {
    match case {
        "ticket" | "updateTicket" | "addComment" => &a.ticket,
        "workspace" | "createTicket" => &a.workspace,
        "updateMemberRole" | "removeMember" | "assign to A's member" => a_agent_user,
        "revokeApiKey" => &a.agent_key_id,
        other => panic!("unknown case {other}"),
    }
}

#[tokio::test]
async fn members_and_keys_of_one_org_cannot_read_or_change_another_orgs_data() {
    let app = TestApp::spawn().await;
    let a = org_fixture(&app, "acme").await;
    let b = org_fixture(&app, "globex").await;
    let before = snapshot_of(&app, &a).await;
    let a_agent_user = a.agent.user_id.unwrap().to_string();

    for attacker in [&b.owner, &b.admin, &b.agent, &b.viewer, &b.agent_key] {
        for (case, query) in ID_CASES {
            let target = target_in_a(case, &a, &a_agent_user);
            let (_, with_a) = app.post(attacker, query, json!({"id": target})).await;
            let (_, with_none) = app
                .post(attacker, query, json!({"id": Uuid::new_v4()}))
                .await;
            assert!(
                with_a.get("errors").is_some(),
                "{case}: B got A's data: {with_a}"
            );
            assert_eq!(
                errors_only(&with_a),
                errors_only(&with_none),
                "{case} as {}: A's id must look exactly like an unknown id",
                attacker.subject
            );
        }
    }

    // Lists B can read contain nothing of A, even when filtered by A's ids.
    let data = app
        .ok(
            &b.owner,
            r#"query($ws: ID!, $u: ID!) {
                all: tickets(first: 100) { totalCount edges { node { id title } } }
                inA: tickets(first: 100, filter: {workspaceId: $ws}) { totalCount edges { node { id } } }
                byA: tickets(first: 100, filter: {assigneeId: $u}) { totalCount }
                search: tickets(first: 100, filter: {search: "printer"}) { edges { node { title } } }
                members(first: 100) { edges { node { user { id email } } } }
                workspaces { id }
                apiKeys { id }
                invitations { id }
                organizations { id }
                organization { id }
                viewer { organization { id } }
            }"#,
            json!({"ws": a.workspace, "u": a_agent_user}),
        )
        .await;
    let text = data.to_string();
    for secret in [
        a.ticket.as_str(),
        a.workspace.as_str(),
        a.comment.as_str(),
        &a_agent_user,
        &a.id.to_string(),
        "acme",
    ] {
        assert!(!text.contains(secret), "B's lists leak {secret}: {text}");
    }
    assert_eq!(data["all"]["totalCount"], 1);
    assert_eq!(data["inA"]["totalCount"], 0);
    assert_eq!(data["byA"]["totalCount"], 0);
    assert_eq!(data["organization"]["id"], b.id.to_string());

    // The analyst key of B, through its persisted query, sees B only.
    let analyst = app
        .ok(
            &b.analyst_key,
            crate::common::persisted("tickets_export"),
            json!({"first": 100}),
        )
        .await;
    assert!(!analyst.to_string().contains(&a.ticket));

    assert_eq!(snapshot_of(&app, &a).await, before, "A's data changed");
}

#[tokio::test]
async fn naming_another_org_in_the_header_is_forbidden() {
    let app = TestApp::spawn().await;
    let a = org_fixture(&app, "acme").await;
    let b = org_fixture(&app, "globex").await;
    for caller in [&b.owner, &b.viewer] {
        let mut c = caller.clone();
        c.org = Some(a.id);
        let (status, body) = app.post(&c, "{ viewer { role } }", json!({})).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(
            crate::common::error_code(&body).as_deref(),
            Some("FORBIDDEN")
        );
    }
    // A key of B that names A is refused as well: a key acts only for its own organization.
    let (status, body) = app
        .post(
            &b.agent_key.clone().in_org(a.id),
            "{ tickets { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    // An organization that does not exist gets the same answer as one the caller is not in.
    let (status, _) = app
        .post(
            &b.owner.clone().in_org(Uuid::new_v4()),
            "{ viewer { role } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_user_in_two_orgs_sees_each_only_when_acting_in_it() {
    let app = TestApp::spawn().await;
    let a = org_fixture(&app, "acme").await;
    let b = org_fixture(&app, "globex").await;
    let shared = a.agent.clone();
    // B's owner cannot pull A's agent in by id (they share no organization): it takes an invitation.
    let add = "mutation($i: AddMemberInput!) { addMember(input: $i) { role } }";
    let code = app
        .err(
            &b.owner,
            add,
            json!({"i": {"userId": shared.user_id, "role": "VIEWER"}}),
        )
        .await;
    assert_eq!(code, "NOT_FOUND");
    let token = app
        .ok(
            &b.owner,
            // Sent to the address the agent signs in with: only they may accept it.
            "mutation { inviteMember(input: {email: \"acme-agent@people.example\", role: VIEWER}) { token } }",
            json!({}),
        )
        .await["inviteMember"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut accepting = shared.clone();
    accepting.org = None;
    app.ok(
        &accepting,
        "mutation($t: String!) { acceptInvitation(token: $t) { role } }",
        json!({"t": token}),
    )
    .await;
    let in_b = Caller {
        org: Some(b.id),
        ..shared.clone()
    };
    let data = app
        .ok(
            &in_b,
            "{ viewer { role } tickets { edges { node { id } } } organizations { slug } }",
            json!({}),
        )
        .await;
    assert_eq!(data["viewer"]["role"], "VIEWER");
    assert_eq!(data["tickets"]["edges"].as_array().unwrap().len(), 1);
    assert_ne!(data["tickets"]["edges"][0]["node"]["id"], a.ticket.as_str());
    let mut slugs: Vec<&str> = data["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["slug"].as_str().unwrap())
        .collect();
    slugs.sort();
    assert_eq!(slugs, ["acme", "globex"]);
    // In B, the agent of A is only a viewer: A's role does not carry over.
    let code = app
        .err(
            &in_b,
            "mutation($t: ID!) { addComment(input: {ticketId: $t, body: \"hi\"}) { id } }",
            json!({"t": a.ticket}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
}

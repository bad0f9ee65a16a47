//! Roles: every mutation against the casbin matrix in `policies/policy.csv` (the file the binary
//! embeds), plus the rules about owners that the matrix alone does not express.

use std::collections::{BTreeSet, HashMap, HashSet};

use deskgraph::authz::Role;
use deskgraph::authz::{Authz, Object};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{Caller, OrgFixture, TestApp, error_code, org_fixture};

const POLICY_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/policy.csv");

/// The policy file, parsed by hand: direct grants and role inheritance (`g, child, parent`).
struct Matrix {
    grants: HashSet<(String, String, String)>,
    parents: HashMap<String, Vec<String>>,
}

impl Matrix {
    fn load() -> Self {
        let text = std::fs::read_to_string(POLICY_PATH).unwrap();
        let mut grants = HashSet::new();
        let mut parents: HashMap<String, Vec<String>> = HashMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = line.split(',').map(str::trim).collect();
            match parts.as_slice() {
                ["p", sub, obj, act] => {
                    grants.insert(((*sub).into(), (*obj).into(), (*act).into()));
                }
                ["g", child, parent] => parents
                    .entry((*child).into())
                    .or_default()
                    .push((*parent).into()),
                _ => panic!("unexpected policy line: {line}"),
            }
        }
        Self { grants, parents }
    }

    /// Whether `role` may do `act` on `obj`, through its own grants or an inherited role's.
    fn allows(&self, role: &str, obj: &str, act: &str) -> bool {
        let mut seen = HashSet::new();
        let mut todo = vec![role.to_owned()];
        while let Some(r) = todo.pop() {
            if !seen.insert(r.clone()) {
                continue;
            }
            if self
                .grants
                .contains(&(r.clone(), obj.to_owned(), act.to_owned()))
            {
                return true;
            }
            todo.extend(self.parents.get(&r).into_iter().flatten().cloned());
        }
        false
    }

    fn objects(&self) -> BTreeSet<&str> {
        self.grants.iter().map(|(_, o, _)| o.as_str()).collect()
    }

    fn actions(&self) -> BTreeSet<&str> {
        self.grants.iter().map(|(_, _, a)| a.as_str()).collect()
    }

    fn roles(&self) -> BTreeSet<&str> {
        self.grants
            .iter()
            .map(|(s, _, _)| s.as_str())
            .chain(
                self.parents
                    .iter()
                    .flat_map(|(c, ps)| std::iter::once(c).chain(ps).map(String::as_str)),
            )
            .collect()
    }
}

fn object(name: &str) -> Object {
    match name {
        "organization" => Object::Organization,
        "workspace" => Object::Workspace,
        "ticket" => Object::Ticket,
        "comment" => Object::Comment,
        "member" => Object::Member,
        "invitation" => Object::Invitation,
        "api_key" => Object::ApiKey,
        "persisted_query" => Object::PersistedQuery,
        "analytics" => Object::Analytics,
        "credits" => Object::Credits,
        "plan" => Object::Plan,
        "audit_log" => Object::AuditLog,
        other => panic!("policy.csv names an object the code does not know: {other}"),
    }
}

#[tokio::test]
async fn casbin_agrees_with_the_parsed_policy_file_for_every_role_object_and_action() {
    let matrix = Matrix::load();
    let authz = Authz::new().await.unwrap();
    // Every role the file names is a role of the code, and the other way round.
    let file_roles: BTreeSet<&str> = matrix.roles();
    let code_roles: BTreeSet<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(file_roles, code_roles);

    let mut checked = 0;
    for role in Role::ALL {
        for obj in matrix.objects() {
            for act in matrix.actions() {
                assert_eq!(
                    authz.allows(role, object(obj), act),
                    matrix.allows(role.as_str(), obj, act),
                    "casbin and policy.csv disagree on ({role}, {obj}, {act})"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} combinations checked");
    // The inheritance chain matters: the owner gets a viewer's right through admin and agent.
    assert!(matrix.allows("owner", "ticket", "read"));
    assert!(!matrix.allows("viewer", "ticket", "create"));
    assert!(!matrix.allows("analyst", "ticket", "create"));
}

/// The mutations of the API and the policy entry that guards each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutation {
    CreateWorkspace,
    CreateTicket,
    UpdateTicket,
    AddComment,
    InviteMember,
    AddMember,
    UpdateMemberRole,
    RemoveMember,
    CreateApiKey,
    RevokeApiKey,
    RevokeInvitation,
    GrantCredits,
    ChangePlan,
}

impl Mutation {
    const ALL: [Mutation; 13] = [
        Mutation::CreateWorkspace,
        Mutation::CreateTicket,
        Mutation::UpdateTicket,
        Mutation::AddComment,
        Mutation::InviteMember,
        Mutation::AddMember,
        Mutation::UpdateMemberRole,
        Mutation::RemoveMember,
        Mutation::CreateApiKey,
        Mutation::RevokeApiKey,
        Mutation::RevokeInvitation,
        Mutation::GrantCredits,
        Mutation::ChangePlan,
    ];

    fn policy(self) -> (&'static str, &'static str) {
        match self {
            Mutation::CreateWorkspace => ("workspace", "create"),
            Mutation::CreateTicket => ("ticket", "create"),
            Mutation::UpdateTicket => ("ticket", "update"),
            Mutation::AddComment => ("comment", "create"),
            Mutation::InviteMember => ("member", "invite"),
            Mutation::AddMember => ("member", "add"),
            Mutation::UpdateMemberRole => ("member", "update"),
            Mutation::RemoveMember => ("member", "remove"),
            Mutation::CreateApiKey => ("api_key", "create"),
            Mutation::RevokeApiKey => ("api_key", "revoke"),
            Mutation::RevokeInvitation => ("invitation", "revoke"),
            Mutation::GrantCredits => ("credits", "grant"),
            Mutation::ChangePlan => ("plan", "change"),
        }
    }
}

/// A user who has been seen by the server (so they can be added as a member).
async fn new_user(app: &TestApp, subject: &str) -> Uuid {
    app.user_id(&Caller::user(subject)).await
}

async fn add_member(app: &TestApp, org: &OrgFixture, user: Uuid, role: &str) {
    app.ok(
        &org.owner,
        "mutation($i: AddMemberInput!) { addMember(input: $i) { role } }",
        json!({"i": {"userId": user, "role": role}}),
    )
    .await;
}

/// Prepares a fresh target for one call of `m` (through the owner) and returns the operation.
async fn prepare(app: &TestApp, org: &OrgFixture, m: Mutation, n: &str) -> (&'static str, Value) {
    match m {
        Mutation::CreateWorkspace => (
            "mutation($i: CreateWorkspaceInput!) { createWorkspace(input: $i) { id } }",
            json!({"i": {"name": format!("Workspace {n}")}}),
        ),
        Mutation::CreateTicket => (
            "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }",
            json!({"i": {"workspaceId": org.workspace, "title": format!("Ticket {n}")}}),
        ),
        Mutation::UpdateTicket | Mutation::AddComment => {
            let ticket = app
                .ok(
                    &org.owner,
                    "mutation($i: CreateTicketInput!) { createTicket(input: $i) { id } }",
                    json!({"i": {"workspaceId": org.workspace, "title": format!("Target {n}")}}),
                )
                .await["createTicket"]["id"]
                .clone();
            if m == Mutation::UpdateTicket {
                (
                    "mutation($id: ID!, $i: UpdateTicketInput!) { updateTicket(id: $id, input: $i) { id } }",
                    json!({"id": ticket, "i": {"title": format!("Updated {n}"), "status": "PENDING"}}),
                )
            } else {
                (
                    "mutation($i: AddCommentInput!) { addComment(input: $i) { id } }",
                    json!({"i": {"ticketId": ticket, "body": format!("Comment {n}")}}),
                )
            }
        }
        Mutation::InviteMember => (
            "mutation($i: InviteMemberInput!) { inviteMember(input: $i) { token } }",
            json!({"i": {"email": format!("invitee-{n}@example.com"), "role": "VIEWER"}}),
        ),
        Mutation::AddMember => {
            let user = new_user(app, &format!("to-add-{n}")).await;
            (
                "mutation($i: AddMemberInput!) { addMember(input: $i) { role } }",
                json!({"i": {"userId": user, "role": "VIEWER"}}),
            )
        }
        Mutation::UpdateMemberRole | Mutation::RemoveMember => {
            let user = new_user(app, &format!("target-{n}")).await;
            add_member(app, org, user, "VIEWER").await;
            if m == Mutation::UpdateMemberRole {
                (
                    "mutation($i: UpdateMemberRoleInput!) { updateMemberRole(input: $i) { role } }",
                    json!({"i": {"userId": user, "role": "AGENT"}}),
                )
            } else {
                (
                    "mutation($u: ID!) { removeMember(userId: $u) }",
                    json!({"u": user}),
                )
            }
        }
        Mutation::CreateApiKey => (
            "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret } }",
            json!({"i": {"name": format!("Key {n}"), "role": "VIEWER"}}),
        ),
        Mutation::RevokeApiKey => {
            let key = app
                .ok(
                    &org.owner,
                    "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { apiKey { id } } }",
                    json!({"i": {"name": format!("Target key {n}"), "role": "VIEWER"}}),
                )
                .await["createApiKey"]["apiKey"]["id"]
                .clone();
            (
                "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
                json!({"id": key}),
            )
        }
        Mutation::RevokeInvitation => {
            let invitation = app
                .ok(
                    &org.owner,
                    "mutation($i: InviteMemberInput!) { inviteMember(input: $i) { invitation { id } } }",
                    json!({"i": {"email": format!("revoke-{n}@example.com"), "role": "AGENT"}}),
                )
                .await["inviteMember"]["invitation"]["id"]
                .clone();
            (
                "mutation($id: ID!) { revokeInvitation(id: $id) { id } }",
                json!({"id": invitation}),
            )
        }
        Mutation::GrantCredits => (
            "mutation($i: GrantCreditsInput!) { grantCredits(input: $i) { balance } }",
            json!({"i": {"amount": 5, "idempotencyKey": format!("grant-{n}")}}),
        ),
        Mutation::ChangePlan => {
            let current = app
                .ok(&org.owner, "{ credits { plan { id } } }", json!({}))
                .await["credits"]["plan"]["id"]
                .clone();
            let target = if current == "enterprise" {
                "pro"
            } else {
                "enterprise"
            };
            (
                "mutation($p: ID!) { changePlan(plan: $p) { plan { id } } }",
                json!({"p": target}),
            )
        }
    }
}

/// Everything a mutation of this file could change, read by the owner.
async fn snapshot(app: &TestApp, org: &OrgFixture) -> Value {
    app.ok(
        &org.owner,
        r#"{
            workspaces { id name }
            tickets(first: 100) { totalCount edges { node { id title status commentCount } } }
            members(first: 100) { totalCount edges { node { role user { id } } } }
            invitations { id email role }
            apiKeys { id name role revokedAt }
            credits { balance held plan { id } }
        }"#,
        json!({}),
    )
    .await
}

/// Runs `m` as `caller` on a fresh target; returns `None` on success or the error code, and checks
/// that a failed call changed nothing and a successful one changed something.
async fn attempt(
    app: &TestApp,
    org: &OrgFixture,
    caller: &Caller,
    m: Mutation,
    n: &str,
) -> Option<String> {
    let (query, vars) = prepare(app, org, m, n).await;
    let before = snapshot(app, org).await;
    let (status, body) = app.post(caller, query, vars).await;
    let after = snapshot(app, org).await;
    match error_code(&body) {
        None => {
            assert_eq!(status, 200, "{m:?} {n}: {body}");
            assert_ne!(before, after, "{m:?} {n} succeeded but changed nothing");
            None
        }
        Some(code) => {
            assert_eq!(before, after, "{m:?} {n} failed ({code}) but wrote: {body}");
            assert!(
                body["data"].is_null()
                    || body["data"]
                        .as_object()
                        .is_some_and(|d| d.values().all(Value::is_null)),
                "{m:?} {n}: failed with data: {body}"
            );
            Some(code)
        }
    }
}

#[tokio::test]
async fn every_mutation_is_forbidden_exactly_when_the_policy_matrix_denies_it() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let matrix = Matrix::load();
    let mut allowed_calls = 0;
    for role in Role::ALL {
        let caller = org.member(role).clone();
        for m in Mutation::ALL {
            let (obj, act) = m.policy();
            // Analyst keys may run registered persisted queries only, whatever else they could do.
            let allowed = matrix.allows(role.as_str(), obj, act) && role != Role::Analyst;
            let n = format!("{role}-{m:?}");
            let outcome = attempt(&app, &org, &caller, m, &n).await;
            if allowed {
                allowed_calls += 1;
                assert_eq!(outcome, None, "{role} may {act} {obj} ({m:?})");
            } else {
                assert_eq!(
                    outcome.as_deref(),
                    Some("FORBIDDEN"),
                    "{role} may not {act} {obj} ({m:?})"
                );
            }
        }
    }
    // owner: all 13; admin: all but changing the plan; agent: tickets and comments.
    assert_eq!(allowed_calls, 13 + 12 + 3);
}

#[tokio::test]
async fn a_viewer_cannot_write_anything() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    for m in Mutation::ALL {
        let outcome = attempt(&app, &org, &org.viewer, m, &format!("viewer-{m:?}")).await;
        assert_eq!(outcome.as_deref(), Some("FORBIDDEN"), "{m:?}");
    }
}

#[tokio::test]
async fn an_agent_cannot_manage_members_or_keys_but_works_tickets() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    for m in Mutation::ALL {
        let outcome = attempt(&app, &org, &org.agent, m, &format!("agent-{m:?}")).await;
        let ticket_work = matches!(
            m,
            Mutation::CreateTicket | Mutation::UpdateTicket | Mutation::AddComment
        );
        if ticket_work {
            assert_eq!(outcome, None, "{m:?}");
        } else {
            assert_eq!(outcome.as_deref(), Some("FORBIDDEN"), "{m:?}");
        }
    }
    // Nor may an agent read the admin lists.
    for query in ["{ apiKeys { id } }", "{ invitations { id } }"] {
        assert_eq!(
            app.err(&org.agent, query, json!({})).await,
            "FORBIDDEN",
            "{query}"
        );
    }
}

const UPDATE_ROLE: &str =
    "mutation($u: ID!, $r: Role!) { updateMemberRole(input: {userId: $u, role: $r}) { role } }";
const REMOVE: &str = "mutation($u: ID!) { removeMember(userId: $u) }";
const ADD: &str =
    "mutation($u: ID!, $r: Role!) { addMember(input: {userId: $u, role: $r}) { role } }";

async fn roles_of(app: &TestApp, org: &OrgFixture) -> Value {
    app.ok(
        &org.owner,
        "{ members(first: 100) { edges { node { role user { id } } } } }",
        json!({}),
    )
    .await
}

#[tokio::test]
async fn an_admin_cannot_add_demote_promote_or_remove_an_owner() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let second = new_user(&app, "second-owner").await;
    add_member(&app, &org, second, "OWNER").await;
    let owner = org.owner.user_id.unwrap();
    let agent = org.agent.user_id.unwrap();
    let stranger = new_user(&app, "stranger").await;
    let before = roles_of(&app, &org).await;

    let cases = [
        ("remove the owner", REMOVE, json!({"u": owner})),
        ("remove the second owner", REMOVE, json!({"u": second})),
        (
            "demote the owner",
            UPDATE_ROLE,
            json!({"u": owner, "r": "ADMIN"}),
        ),
        (
            "demote the second owner",
            UPDATE_ROLE,
            json!({"u": second, "r": "VIEWER"}),
        ),
        (
            "promote an agent to owner",
            UPDATE_ROLE,
            json!({"u": agent, "r": "OWNER"}),
        ),
        ("add an owner", ADD, json!({"u": stranger, "r": "OWNER"})),
    ];
    for (case, query, vars) in cases {
        assert_eq!(
            app.err(&org.admin, query, vars).await,
            "FORBIDDEN",
            "an admin must not {case}"
        );
    }
    assert_eq!(roles_of(&app, &org).await, before, "nothing changed");

    // The same admin may manage non-owners.
    let data = app
        .ok(&org.admin, UPDATE_ROLE, json!({"u": agent, "r": "VIEWER"}))
        .await;
    assert_eq!(data["updateMemberRole"]["role"], "VIEWER");
}

#[tokio::test]
async fn the_last_owner_cannot_be_demoted_or_removed() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let owner = org.owner.user_id.unwrap();
    let before = roles_of(&app, &org).await;
    for role in ["ADMIN", "AGENT", "VIEWER"] {
        let (_, body) = app
            .post(&org.owner, UPDATE_ROLE, json!({"u": owner, "r": role}))
            .await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("BAD_USER_INPUT"),
            "{body}"
        );
    }
    let (_, body) = app.post(&org.owner, REMOVE, json!({"u": owner})).await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("BAD_USER_INPUT"),
        "{body}"
    );
    assert_eq!(roles_of(&app, &org).await, before);
    let data = app.ok(&org.owner, "{ viewer { role } }", json!({})).await;
    assert_eq!(data["viewer"]["role"], "OWNER");
    // Setting the owner's role to OWNER again is not a demotion.
    let data = app
        .ok(&org.owner, UPDATE_ROLE, json!({"u": owner, "r": "OWNER"}))
        .await;
    assert_eq!(data["updateMemberRole"]["role"], "OWNER");
}

#[tokio::test]
async fn with_two_owners_one_owner_can_demote_or_remove_the_other() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let first = org.owner.user_id.unwrap();
    let mut second = Caller::user("second-owner");
    let second_id = app.user_id(&second).await;
    second.user_id = Some(second_id);
    let second = second.in_org(org.id);
    add_member(&app, &org, second_id, "OWNER").await;

    // The second owner demotes the first, who is then an admin.
    let data = app
        .ok(&second, UPDATE_ROLE, json!({"u": first, "r": "ADMIN"}))
        .await;
    assert_eq!(data["updateMemberRole"]["role"], "ADMIN");
    let data = app.ok(&org.owner, "{ viewer { role } }", json!({})).await;
    assert_eq!(data["viewer"]["role"], "ADMIN");
    // Now the second owner is the last one.
    assert_eq!(
        app.err(&second, UPDATE_ROLE, json!({"u": second_id, "r": "ADMIN"}))
            .await,
        "BAD_USER_INPUT"
    );
    // The demoted first owner, now an admin, cannot touch the remaining owner.
    assert_eq!(
        app.err(&org.owner, REMOVE, json!({"u": second_id})).await,
        "FORBIDDEN"
    );

    // Promote back, then the first owner removes the second.
    app.ok(&second, UPDATE_ROLE, json!({"u": first, "r": "OWNER"}))
        .await;
    let data = app.ok(&org.owner, REMOVE, json!({"u": second_id})).await;
    assert_eq!(data["removeMember"], second_id.to_string());
    let (status, _) = app.post(&second, "{ viewer { role } }", json!({})).await;
    assert_eq!(status, 403, "the removed owner is refused");
}

#[tokio::test]
async fn an_agent_api_key_creates_tickets_and_comments_as_the_key() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let data = app
        .ok(
            &org.agent_key,
            "mutation($ws: ID!) { createTicket(input: {workspaceId: $ws, title: \"From the integration\"}) { id title createdBy { id } } }",
            json!({"ws": org.workspace}),
        )
        .await;
    let ticket = data["createTicket"]["id"].as_str().unwrap().to_owned();
    assert_eq!(data["createTicket"]["title"], "From the integration");
    assert!(data["createTicket"]["createdBy"].is_null(), "{data}");

    let data = app
        .ok(
            &org.agent_key,
            "mutation($t: ID!) { addComment(input: {ticketId: $t, body: \"Synced from CRM\"}) { id body apiKeyId author { id } } }",
            json!({"t": ticket}),
        )
        .await;
    let comment = &data["addComment"];
    assert_eq!(comment["apiKeyId"], org.agent_key_id.as_str());
    assert!(comment["author"].is_null(), "{data}");
    assert_eq!(comment["body"], "Synced from CRM");

    // As stored, read back by a member.
    let data = app
        .ok(
            &org.owner,
            "query($t: ID!) { ticket(id: $t) { commentCount comments { edges { node { apiKeyId author { id } } } } } }",
            json!({"t": ticket}),
        )
        .await;
    assert_eq!(data["ticket"]["commentCount"], 1);
    let node = &data["ticket"]["comments"]["edges"][0]["node"];
    assert_eq!(node["apiKeyId"], org.agent_key_id.as_str());
    assert!(node["author"].is_null());

    // The agent key is no admin: it manages neither members nor keys.
    assert_eq!(
        app.err(
            &org.agent_key,
            "mutation { createApiKey(input: {name: \"more\", role: ADMIN}) { secret } }",
            json!({}),
        )
        .await,
        "FORBIDDEN"
    );
}

#[tokio::test]
async fn only_an_owner_revokes_an_invitation_to_the_owner_role() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let id = app
        .ok(
            &org.owner,
            "mutation { inviteMember(input: {email: \"cofounder@example.com\", role: OWNER}) { invitation { id } } }",
            json!({}),
        )
        .await["inviteMember"]["invitation"]["id"]
        .clone();
    let revoke = "mutation($id: ID!) { revokeInvitation(id: $id) { role } }";
    assert_eq!(
        app.err(&org.admin, revoke, json!({"id": id})).await,
        "FORBIDDEN"
    );
    let still = app
        .ok(&org.owner, "{ invitations { id } }", json!({}))
        .await;
    assert_eq!(still["invitations"].as_array().unwrap().len(), 1);
    let revoked = app.ok(&org.owner, revoke, json!({"id": id})).await;
    assert_eq!(revoked["revokeInvitation"]["role"], "OWNER");
    // Gone: a second revocation finds nothing.
    assert_eq!(
        app.err(&org.owner, revoke, json!({"id": id})).await,
        "NOT_FOUND"
    );
}

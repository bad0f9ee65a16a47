//! Authentication and membership through HTTP: missing, malformed, forged and expired credentials are
//! UNAUTHENTICATED (401); an organization the caller does not belong to is FORBIDDEN (403); removals
//! and revocations take effect on the very next request; users appear on first sight; invitations.

use std::time::{SystemTime, UNIX_EPOCH};

use deskgraph::identity::auth::{Claims, mint_token};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{Caller, TEST_SECRET, TestApp, error_code, org_fixture, send_raw};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(claims: &Claims, alg: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn claims(sub: &str, exp: u64) -> Claims {
    Claims {
        sub: sub.into(),
        email: None,
        email_verified: None,
        name: None,
        org_id: None,
        exp,
        nbf: None,
        iat: Some(exp.saturating_sub(3600)),
        iss: None,
        aud: None,
    }
}

/// POSTs `{ viewer { role } }` with the given raw `Authorization` header (none when `None`).
async fn viewer_with(
    app: &TestApp,
    authorization: Option<&str>,
    org: Option<Uuid>,
) -> (u16, Value) {
    let mut req = app
        .http
        .post(format!("{}/graphql", app.base))
        .json(&json!({"query": "{ viewer { role user { id } } }"}));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    if let Some(org) = org {
        req = req.header("x-org-id", org.to_string());
    }
    let resp = send_raw(req).await;
    (resp.status, resp.json())
}

#[tokio::test]
async fn missing_malformed_forged_and_expired_credentials_are_unauthenticated_with_401() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;

    let valid = mint_token(TEST_SECRET, "someone", None, None, None, 3600).unwrap();
    let wrong_signature = mint_token("another-secret", "someone", None, None, None, 3600).unwrap();
    let expired = sign(
        &claims("someone", now() - 3600),
        Algorithm::HS256,
        TEST_SECRET,
    );
    // Signed with the right secret but another algorithm than the one accepted.
    let other_alg = sign(
        &claims("someone", now() + 3600),
        Algorithm::HS512,
        TEST_SECRET,
    );
    // The valid token's payload under an `alg: none` header, without a signature.
    let payload = valid.split('.').nth(1).unwrap();
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    // The valid token with its payload swapped for one naming another subject.
    let tampered = {
        let other = mint_token(TEST_SECRET, "admin", None, None, None, 3600).unwrap();
        let parts: Vec<&str> = valid.split('.').collect();
        format!(
            "{}.{}.{}",
            parts[0],
            other.split('.').nth(1).unwrap(),
            parts[2]
        )
    };

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("Basic scheme", Some("Basic dXNlcjpwYXNz".into())),
        ("Bearer without a token", Some("Bearer ".into())),
        ("malformed token", Some("Bearer not-a-jwt".into())),
        ("three garbage parts", Some("Bearer aaa.bbb.ccc".into())),
        ("wrong signature", Some(format!("Bearer {wrong_signature}"))),
        ("expired token", Some(format!("Bearer {expired}"))),
        ("HS512 token", Some(format!("Bearer {other_alg}"))),
        ("alg none token", Some(format!("Bearer {unsigned}"))),
        ("tampered payload", Some(format!("Bearer {tampered}"))),
    ];
    for (case, header) in &cases {
        for org_header in [None, Some(org.id)] {
            let (status, body) = viewer_with(&app, header.as_deref(), org_header).await;
            assert_eq!(status, 401, "{case}: {body}");
            assert_eq!(
                error_code(&body).as_deref(),
                Some("UNAUTHENTICATED"),
                "{case}: {body}"
            );
            assert!(body["data"].is_null(), "{case}: {body}");
        }
    }

    // The harness's anonymous caller gets the same answer.
    let (status, body) = app
        .post(&Caller::anonymous(), "{ viewer { role } }", json!({}))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_code(&body).as_deref(), Some("UNAUTHENTICATED"));

    // The valid token works, so the failures above are about the credentials only.
    let (status, body) = viewer_with(&app, Some(&format!("Bearer {valid}")), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["viewer"]["user"]["id"].is_string(), "{body}");
}

#[tokio::test]
async fn an_org_header_that_is_not_a_uuid_is_bad_input() {
    let app = TestApp::spawn().await;
    let caller = Caller::user("someone");
    let resp = send_raw(
        caller.apply(
            app.http
                .post(format!("{}/graphql", app.base))
                .header("x-org-id", "acme")
                .json(&json!({"query": "{ viewer { role } }"})),
        ),
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    assert_eq!(error_code(&resp.json()).as_deref(), Some("BAD_USER_INPUT"));
}

#[tokio::test]
async fn an_organization_the_user_is_not_a_member_of_is_forbidden_with_403() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let outsider = Caller::user("outsider").in_org(org.id);
    for query in [
        "{ viewer { role } }",
        "{ tickets { totalCount } }",
        "mutation { createWorkspace(input: {name: \"Mine\"}) { id } }",
    ] {
        let (status, body) = app.post(&outsider, query, json!({})).await;
        assert_eq!(status, 403, "{query}: {body}");
        assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"), "{body}");
        assert!(body["data"].is_null(), "{body}");
    }
    let names = app
        .ok(&org.owner, "{ workspaces { name } }", json!({}))
        .await;
    assert_eq!(names["workspaces"], json!([{"name": "Support"}]));
}

#[tokio::test]
async fn operations_other_than_viewer_and_create_organization_need_an_organization() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let mut no_org = org.owner.clone();
    no_org.org = None;
    for query in [
        "{ organization { id } }",
        "{ tickets { totalCount } }",
        "{ workspaces { id } }",
        "{ members { totalCount } }",
        "mutation { createWorkspace(input: {name: \"Elsewhere\"}) { id } }",
    ] {
        assert_eq!(
            app.err(&no_org, query, json!({})).await,
            "FORBIDDEN",
            "{query}"
        );
    }
}

#[tokio::test]
async fn a_member_removed_by_the_owner_is_refused_on_their_very_next_request() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let agent = org.agent.clone();
    let data = app
        .ok(
            &agent,
            "{ viewer { role } tickets { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data["viewer"]["role"], "AGENT");

    let removed = app
        .ok(
            &org.owner,
            "mutation($u: ID!) { removeMember(userId: $u) }",
            json!({"u": agent.user_id}),
        )
        .await;
    assert_eq!(removed["removeMember"], agent.user_id.unwrap().to_string());

    let (status, body) = app
        .post(&agent, "{ tickets { totalCount } }", json!({}))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"));
    let (status, body) = app
        .post(
            &agent,
            "mutation($t: ID!) { addComment(input: {ticketId: $t, body: \"still here?\"}) { id } }",
            json!({"t": org.ticket}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"));

    let after = app
        .ok(
            &org.owner,
            "query($t: ID!) { ticket(id: $t) { commentCount } members { totalCount } }",
            json!({"t": org.ticket}),
        )
        .await;
    assert_eq!(after["ticket"]["commentCount"], 1);
    assert_eq!(after["members"]["totalCount"], 3);
    // Without an organization the former member is still a user.
    let mut no_org = agent.clone();
    no_org.org = None;
    let data = app
        .ok(
            &no_org,
            "{ viewer { role organization { id } } organizations { id } }",
            json!({}),
        )
        .await;
    assert_eq!(data["organizations"], json!([]));
}

#[tokio::test]
async fn a_revoked_api_key_is_refused_on_its_next_request_and_an_unknown_key_always() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let query = "{ tickets { totalCount } }";
    let data = app.ok(&org.agent_key, query, json!({})).await;
    assert_eq!(data["tickets"]["totalCount"], 1);

    let revoked = app
        .ok(
            &org.admin,
            "mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }",
            json!({"id": org.agent_key_id}),
        )
        .await;
    assert_eq!(revoked["revokeApiKey"]["id"], org.agent_key_id.as_str());
    assert!(
        revoked["revokeApiKey"]["revokedAt"].is_string(),
        "{revoked}"
    );

    let (status, body) = app.post(&org.agent_key, query, json!({})).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_code(&body).as_deref(), Some("UNAUTHENTICATED"));
    assert!(body["data"].is_null());
    // Naming its organization does not help a revoked key.
    let (status, _) = app
        .post(&org.agent_key.clone().in_org(org.id), query, json!({}))
        .await;
    assert_eq!(status, 401);

    // The other key of the organization is untouched.
    let keys = app
        .ok(&org.admin, "{ apiKeys { id revokedAt } }", json!({}))
        .await;
    let revoked_count = keys["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["revokedAt"].is_string())
        .count();
    assert_eq!(revoked_count, 1, "{keys}");

    let random = Caller::key(&deskgraph::identity::auth::new_secret("dgk_"));
    let (status, body) = app.post(&random, query, json!({})).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_code(&body).as_deref(), Some("UNAUTHENTICATED"));
    let (status, _) = app
        .post(&random.clone().in_org(org.id), query, json!({}))
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_brand_new_subject_gets_one_user_row_on_its_first_request() {
    let app = TestApp::spawn().await;
    let subject = "auth0|6512f0c0 first-timer";
    let caller = Caller::user(subject);
    let admin = app.db.admin().await;
    let admin = &admin;
    let count = |n: i64| async move {
        let row = admin
            .query_one("select count(*) from users where subject = $1", &[&subject])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), n);
    };
    count(0).await;

    let data = app
        .ok(&caller, "{ viewer { user { id email name } } }", json!({}))
        .await;
    let id = data["viewer"]["user"]["id"].as_str().unwrap().to_owned();
    assert!(Uuid::parse_str(&id).is_ok(), "{id}");
    assert_eq!(
        data["viewer"]["user"]["email"],
        format!("{subject}@people.example")
    );
    assert_eq!(data["viewer"]["user"]["name"], subject);
    count(1).await;

    // The same subject is the same user on later requests.
    let again = app
        .ok(&caller, "{ viewer { user { id } } }", json!({}))
        .await;
    assert_eq!(again["viewer"]["user"]["id"], id.as_str());
    count(1).await;
}

#[tokio::test]
async fn viewer_works_without_an_organization() {
    let app = TestApp::spawn().await;
    let caller = Caller::user("no-org-yet");
    let (status, body) = app
        .post(
            &caller,
            "{ viewer { user { id } organization { id } role apiKeyId } organizations { id } }",
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let viewer = &body["data"]["viewer"];
    assert!(viewer["user"]["id"].is_string(), "{body}");
    assert!(viewer["organization"].is_null(), "{body}");
    assert!(viewer["role"].is_null(), "{body}");
    assert!(viewer["apiKeyId"].is_null(), "{body}");
    assert_eq!(body["data"]["organizations"], json!([]));
}

#[tokio::test]
async fn create_organization_works_without_an_organization_and_makes_the_caller_owner() {
    let app = TestApp::spawn().await;
    let caller = Caller::user("founder");
    let user_id = app.user_id(&caller).await;
    let data = app
        .ok(
            &caller,
            "mutation { createOrganization(input: {name: \"Initech\", slug: \"initech\"}) { id name slug } }",
            json!({}),
        )
        .await;
    let org = &data["createOrganization"];
    assert_eq!(org["name"], "Initech");
    assert_eq!(org["slug"], "initech");
    let org_id: Uuid = org["id"].as_str().unwrap().parse().unwrap();

    let in_org = caller.clone().in_org(org_id);
    let data = app
        .ok(
            &in_org,
            "{ viewer { role user { id } organization { id slug } } members { totalCount edges { node { role user { id } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["viewer"]["role"], "OWNER");
    assert_eq!(data["viewer"]["organization"]["id"], org_id.to_string());
    assert_eq!(data["viewer"]["organization"]["slug"], "initech");
    assert_eq!(data["members"]["totalCount"], 1);
    assert_eq!(data["members"]["edges"][0]["node"]["role"], "OWNER");
    assert_eq!(
        data["members"]["edges"][0]["node"]["user"]["id"],
        user_id.to_string()
    );
    // As owner, the founder can write at once.
    app.ok(
        &in_org,
        "mutation { createWorkspace(input: {name: \"Front desk\"}) { id } }",
        json!({}),
    )
    .await;
    // Without the header the founder still has no organization chosen.
    let data = app
        .ok(
            &caller,
            "{ viewer { role } organizations { id } }",
            json!({}),
        )
        .await;
    assert!(data["viewer"]["role"].is_null());
    assert_eq!(data["organizations"], json!([{"id": org_id.to_string()}]));
}

#[tokio::test]
async fn an_api_key_cannot_create_an_organization() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let code = app
        .err(
            &org.agent_key,
            "mutation { createOrganization(input: {name: \"Keyed\", slug: \"keyed\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "FORBIDDEN");
}

async fn invite(app: &TestApp, by: &Caller, email: &str, role: &str) -> (u16, Value) {
    app.post(
        by,
        "mutation($i: InviteMemberInput!) { inviteMember(input: $i) { token invitation { id email role } } }",
        json!({"i": {"email": email, "role": role}}),
    )
    .await
}

const ACCEPT: &str =
    "mutation($t: String!) { acceptInvitation(token: $t) { role organization { id slug } } }";

#[tokio::test]
async fn an_invitation_token_makes_a_new_user_a_member_with_its_role_exactly_once() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    // Sent to the address the hire signs in with (`Caller::user` tokens carry `{subject}@people.example`).
    let (status, body) = invite(&app, &org.admin, "New-Hire@People.example", "AGENT").await;
    assert_eq!(status, 200, "{body}");
    let created = &body["data"]["inviteMember"];
    assert_eq!(created["invitation"]["role"], "AGENT");
    assert_eq!(created["invitation"]["email"], "new-hire@people.example");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());

    let pending = app
        .ok(&org.admin, "{ invitations { id } }", json!({}))
        .await;
    assert_eq!(pending["invitations"].as_array().unwrap().len(), 1);

    let hire = Caller::user("new-hire");
    let data = app.ok(&hire, ACCEPT, json!({"t": token})).await;
    assert_eq!(data["acceptInvitation"]["role"], "AGENT");
    assert_eq!(
        data["acceptInvitation"]["organization"]["id"],
        org.id.to_string()
    );
    assert_eq!(
        data["acceptInvitation"]["organization"]["slug"],
        org.slug.as_str()
    );

    let hire_in_org = hire.clone().in_org(org.id);
    let data = app
        .ok(
            &hire_in_org,
            "{ viewer { role } tickets { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(data["viewer"]["role"], "AGENT");
    assert_eq!(data["tickets"]["totalCount"], 1);

    // The token is spent: neither the same user nor anyone else can use it again.
    assert_eq!(
        app.err(&hire, ACCEPT, json!({"t": token})).await,
        "NOT_FOUND"
    );
    let latecomer = Caller::user("latecomer");
    assert_eq!(
        app.err(&latecomer, ACCEPT, json!({"t": token})).await,
        "NOT_FOUND"
    );
    let (status, _) = app
        .post(&latecomer.in_org(org.id), "{ viewer { role } }", json!({}))
        .await;
    assert_eq!(status, 403);
    // A made-up token is NOT_FOUND as well.
    assert_eq!(
        app.err(&hire, ACCEPT, json!({"t": "dginv_0000"})).await,
        "NOT_FOUND"
    );

    let members = app
        .ok(
            &org.owner,
            "{ members { totalCount } invitations { id } }",
            json!({}),
        )
        .await;
    assert_eq!(members["members"]["totalCount"], 5);
    assert_eq!(members["invitations"], json!([]));
}

#[tokio::test]
async fn an_admin_cannot_invite_an_owner_but_the_owner_can() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let (_, body) = invite(&app, &org.admin, "boss@example.com", "OWNER").await;
    assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"), "{body}");
    let pending = app
        .ok(&org.owner, "{ invitations { id } }", json!({}))
        .await;
    assert_eq!(pending["invitations"], json!([]), "nothing was written");

    let (status, body) = invite(&app, &org.owner, "boss@people.example", "OWNER").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let token = body["data"]["inviteMember"]["token"].as_str().unwrap();
    let boss = Caller::user("boss");
    let data = app.ok(&boss, ACCEPT, json!({"t": token})).await;
    assert_eq!(data["acceptInvitation"]["role"], "OWNER");
    let data = app
        .ok(&boss.in_org(org.id), "{ viewer { role } }", json!({}))
        .await;
    assert_eq!(data["viewer"]["role"], "OWNER");
}

#[tokio::test]
async fn api_keys_never_get_administrative_roles() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    for role in ["ADMIN", "OWNER"] {
        let (_, body) = app
            .post(
                &org.owner,
                "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret } }",
                json!({"i": {"name": "ops", "role": role}}),
            )
            .await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("BAD_USER_INPUT"),
            "{role}: {body}"
        );
        assert_eq!(body["errors"][0]["extensions"]["field"], "role");
    }
    let keys = app.ok(&org.owner, "{ apiKeys { id } }", json!({})).await;
    assert_eq!(
        keys["apiKeys"].as_array().unwrap().len(),
        2,
        "only the fixture's keys exist"
    );
}

#[tokio::test]
async fn a_removed_admin_keeps_no_administrative_power_through_keys_they_made() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let secret = app
        .ok(
            &org.admin,
            "mutation { createApiKey(input: {name: \"mine\", role: AGENT}) { secret } }",
            json!({}),
        )
        .await["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ok(
        &org.owner,
        "mutation($u: ID!) { removeMember(userId: $u) }",
        json!({"u": org.admin.user_id}),
    )
    .await;
    let key = Caller::key(&secret);
    let admin_id = org.admin.user_id.unwrap().to_string();
    for (what, doc) in [
        (
            "re-add",
            "mutation($u: ID!) { addMember(input: {userId: $u, role: ADMIN}) { role } }",
        ),
        (
            "new key",
            "mutation($u: ID!) { createApiKey(input: {name: $u, role: AGENT}) { secret } }",
        ),
        (
            "invite",
            "mutation($u: String!) { inviteMember(input: {email: $u, role: ADMIN}) { token } }",
        ),
    ] {
        let u = if what == "invite" {
            "back@x.example".to_owned()
        } else {
            admin_id.clone()
        };
        let (_, body) = app.post(&key, doc, json!({"u": u})).await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("FORBIDDEN"),
            "{what}: {body}"
        );
    }
    let (status, _) = app.post(&org.admin, "{ viewer { role } }", json!({})).await;
    assert_eq!(status, 403);
    let members = app
        .ok(&org.owner, "{ members { totalCount } }", json!({}))
        .await;
    assert_eq!(members["members"]["totalCount"], 3);
}

#[tokio::test]
async fn members_are_added_by_id_only_when_new_or_already_a_colleague() {
    let app = TestApp::spawn().await;
    let a = org_fixture(&app, "acme").await;
    let b = org_fixture(&app, "globex").await;
    let add =
        "mutation($u: ID!) { addMember(input: {userId: $u, role: VIEWER}) { user { email } } }";
    // A member of B only: A's admin gets the answer an unknown id gets, and learns nothing.
    for target in [b.agent.user_id.unwrap(), uuid::Uuid::new_v4()] {
        let (_, body) = app.post(&a.admin, add, json!({"u": target})).await;
        assert_eq!(error_code(&body).as_deref(), Some("NOT_FOUND"), "{body}");
        assert!(!body.to_string().contains("globex-agent"), "{body}");
    }
    let orgs = app
        .ok(
            &Caller {
                org: None,
                ..b.agent.clone()
            },
            "{ organizations { slug } }",
            json!({}),
        )
        .await;
    assert_eq!(orgs["organizations"], json!([{"slug": "globex"}]));
    // Someone new to deskgraph can be added by id...
    let newcomer = Caller::user("newcomer");
    let newcomer_id = app.user_id(&newcomer).await;
    app.ok(&a.admin, add, json!({"u": newcomer_id})).await;
    // ...and a colleague from an organization the caller shares with them too.
    let c = app
        .ok(
            &Caller {
                org: None,
                ..a.owner.clone()
            },
            "mutation { createOrganization(input: {name: \"C\", slug: \"initech\"}) { id } }",
            json!({}),
        )
        .await["createOrganization"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let in_c = a.owner.clone().in_org(c);
    app.ok(&in_c, add, json!({"u": a.viewer.user_id})).await;
}

#[tokio::test]
async fn a_token_whose_subject_is_empty_or_too_long_is_unauthenticated() {
    let app = TestApp::spawn().await;
    for sub in [String::new(), "x".repeat(256)] {
        let token = deskgraph::identity::auth::mint_token(
            crate::common::TEST_SECRET,
            &sub,
            None,
            None,
            None,
            600,
        )
        .unwrap();
        let (status, body) = app
            .post(&Caller::key(&token), "{ viewer { role } }", json!({}))
            .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(error_code(&body).as_deref(), Some("UNAUTHENTICATED"));
    }
}

/// An HS256 token for `subject` signed with the test secret, with `nbf` and `iat` as given.
fn token_at(subject: &str, nbf: Option<u64>, iat: Option<u64>) -> String {
    let mut c = claims(subject, now() + 3600);
    c.nbf = nbf;
    c.iat = iat;
    sign(&c, Algorithm::HS256, TEST_SECRET)
}

#[tokio::test]
async fn a_token_before_its_nbf_or_issued_in_the_future_is_refused_beyond_the_leeway() {
    let app = TestApp::spawn().await;
    let hour_ahead = now() + 3600;
    let refused = [
        (
            "nbf an hour ahead",
            token_at("clock", Some(hour_ahead), None),
            "token is not valid yet",
        ),
        (
            "iat an hour ahead",
            token_at("clock", None, Some(hour_ahead)),
            "token was issued in the future",
        ),
        (
            "nbf and iat an hour ahead",
            token_at("clock", Some(hour_ahead), Some(hour_ahead)),
            "token is not valid yet",
        ),
    ];
    for (case, token, message) in &refused {
        let (status, body) = viewer_with(&app, Some(&format!("Bearer {token}")), None).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert_eq!(
            error_code(&body).as_deref(),
            Some("UNAUTHENTICATED"),
            "{case}: {body}"
        );
        assert_eq!(body["errors"][0]["message"], *message, "{case}: {body}");
        assert!(body["data"].is_null(), "{case}: {body}");
    }
    // Clock skew within the leeway (30 s), times in the past, and no nbf/iat at all are accepted.
    let accepted = [
        ("nbf 10 s ahead", token_at("clock", Some(now() + 10), None)),
        ("iat 10 s ahead", token_at("clock", None, Some(now() + 10))),
        ("nbf in the past", token_at("clock", Some(now() - 60), None)),
        (
            "iat in the past",
            token_at("clock", None, Some(now() - 3600)),
        ),
        ("neither nbf nor iat", token_at("clock", None, None)),
    ];
    for (case, token) in &accepted {
        let (status, body) = viewer_with(&app, Some(&format!("Bearer {token}")), None).await;
        assert_eq!(status, 200, "{case}: {body}");
        assert!(
            body["data"]["viewer"]["user"]["id"].is_string(),
            "{case}: {body}"
        );
    }
}

/// A person signed in with an HS256 token carrying `email` as is (no `email_verified`, as
/// `deskgraph token --email` mints them).
fn person(subject: &str, email: Option<&str>) -> Caller {
    let token = mint_token(TEST_SECRET, subject, email, Some(subject), None, 3600).unwrap();
    Caller {
        subject: subject.into(),
        ..Caller::key(&token)
    }
}

/// What the database holds for an invitation and the organization's audit trail, read as the owner
/// role (bypassing RLS): (accepted_at is set, memberships of `subject` in `org`, audit entries).
async fn invitation_state(
    app: &TestApp,
    org: Uuid,
    email: &str,
    subject: &str,
) -> (bool, i64, i64) {
    let admin = app.db.admin().await;
    let accepted: bool = admin
        .query_one(
            "select bool_or(accepted_at is not null) from invitations where org_id = $1 and email = $2",
            &[&org, &email],
        )
        .await
        .unwrap()
        .get(0);
    let memberships: i64 = admin
        .query_one(
            "select count(*) from memberships m join users u on u.id = m.user_id
              where m.org_id = $1 and u.subject = $2",
            &[&org, &subject],
        )
        .await
        .unwrap()
        .get(0);
    let audit: i64 = admin
        .query_one("select count(*) from audit_log where org_id = $1", &[&org])
        .await
        .unwrap()
        .get(0);
    (accepted, memberships, audit)
}

#[tokio::test]
async fn only_the_invited_email_accepts_and_a_refusal_leaves_the_invitation_usable() {
    let app = TestApp::spawn().await;
    let org = org_fixture(&app, "acme").await;
    let (_, body) = invite(&app, &org.admin, "sam@initech.example", "AGENT").await;
    let token = body["data"]["inviteMember"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = invitation_state(&app, org.id, "sam@initech.example", "sam").await;
    assert_eq!((before.0, before.1), (false, 0));

    // Someone else holding the token, and someone whose token carries no e-mail, are refused with
    // the invited address masked.
    for (who, caller, why) in [
        (
            "another person",
            person("mallory", Some("mallory@initech.example")),
            "sign in with that e-mail address",
        ),
        (
            "a token without e-mail",
            person("anon", None),
            "carries no e-mail address",
        ),
        (
            "a look-alike address",
            person("sam2", Some("sam@initech.example.evil")),
            "sign in with that e-mail address",
        ),
    ] {
        let (status, body) = app.post(&caller, ACCEPT, json!({"t": token})).await;
        assert_eq!(status, 200, "{who}: {body}");
        assert_eq!(
            error_code(&body).as_deref(),
            Some("FORBIDDEN"),
            "{who}: {body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("s***@initech.example"), "{who}: {message}");
        assert!(message.contains(why), "{who}: {message}");
        assert!(
            !body.to_string().contains("sam@"),
            "{who} must not see the address: {body}"
        );
        assert!(
            !body.to_string().contains(&org.id.to_string()),
            "{who}: {body}"
        );
        assert!(body["data"].is_null(), "{who}: {body}");
        let mut in_org = caller.clone();
        in_org.org = Some(org.id);
        let (status, _) = app.post(&in_org, "{ viewer { role } }", json!({})).await;
        assert_eq!(status, 403, "{who} did not join");
    }
    // Nothing changed: the invitation is pending, nobody joined, the audit trail has no new entry.
    assert_eq!(
        invitation_state(&app, org.id, "sam@initech.example", "mallory").await,
        (false, 0, before.2)
    );
    let pending = app
        .ok(&org.admin, "{ invitations { email } }", json!({}))
        .await;
    assert_eq!(
        pending["invitations"],
        json!([{"email": "sam@initech.example"}])
    );

    // The invited person still accepts it, whatever the case and spacing of their token's address.
    let sam = person("sam", Some("  Sam@Initech.EXAMPLE "));
    let data = app.ok(&sam, ACCEPT, json!({"t": token})).await;
    assert_eq!(data["acceptInvitation"]["role"], "AGENT");
    assert_eq!(
        data["acceptInvitation"]["organization"]["id"],
        org.id.to_string()
    );
    let after = invitation_state(&app, org.id, "sam@initech.example", "sam").await;
    assert_eq!((after.0, after.1), (true, 1));
    assert!(after.2 > before.2, "the acceptance is audited");
    let data = app
        .ok(
            &sam.clone().in_org(org.id),
            "{ viewer { role } }",
            json!({}),
        )
        .await;
    assert_eq!(data["viewer"]["role"], "AGENT");
    // Spent now, for everyone.
    assert_eq!(
        app.err(&sam, ACCEPT, json!({"t": token})).await,
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn with_binding_off_whoever_holds_the_token_accepts() {
    let mut cfg = crate::common::server_config();
    cfg.invitations_bind_email = false;
    let app = TestApp::spawn_with(cfg).await;
    let org = org_fixture(&app, "acme").await;
    let (_, body) = invite(&app, &org.admin, "sam@initech.example", "VIEWER").await;
    let token = body["data"]["inviteMember"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A token from an identity provider without e-mails.
    let holder = person("holder", None);
    let data = app.ok(&holder, ACCEPT, json!({"t": token})).await;
    assert_eq!(data["acceptInvitation"]["role"], "VIEWER");
    let state = invitation_state(&app, org.id, "sam@initech.example", "holder").await;
    assert_eq!((state.0, state.1), (true, 1));
}

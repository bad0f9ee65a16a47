//! Tokens from an external identity provider, verified with the public keys of its JWKS endpoint.
//! The provider is faked in-process: a real HTTP server serving a JSON Web Key Set, with ES256 keys
//! generated for each test run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
use rand::RngCore as _;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::common::{Caller, TestApp, error_code, server_config};

/// A signing key and its public JWK.
struct IdpKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

fn new_key(kid: &str) -> IdpKey {
    let secret = loop {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
            break secret;
        }
    };
    let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
    let point = secret.public_key().to_sec1_bytes();
    assert_eq!(point.len(), 65, "uncompressed P-256 point");
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    IdpKey {
        kid: kid.into(),
        encoding: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        jwk,
    }
}

fn sign(key: &IdpKey, kid: Option<&str>, sub: &str, exp_offset: i64) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid.map(str::to_owned);
    let exp = chrono::Utc::now().timestamp() + exp_offset;
    let claims = json!({"sub": sub, "email": format!("{sub}@idp.example"), "exp": exp, "iss": "https://idp.example/"});
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

/// The fake provider: serves whatever key set the test puts in `keys`, and counts fetches.
struct Idp {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

async fn idp(initial: Vec<Value>) -> Idp {
    let keys = Arc::new(Mutex::new(initial));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (k, f) = (keys.clone(), fetches.clone());
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let (k, f) = (k.clone(), f.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"keys": *k.lock().await}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Idp {
        url: format!("http://{addr}/.well-known/jwks.json"),
        keys,
        fetches,
    }
}

async fn app_with(idp: &Idp) -> TestApp {
    let mut cfg = server_config();
    cfg.jwks_url = idp.url.clone();
    cfg.jwt_issuer = "https://idp.example/".into();
    TestApp::spawn_with(cfg).await
}

fn bearer(token: String) -> Caller {
    Caller {
        bearer: Some(token),
        org: None,
        user_id: None,
        subject: String::new(),
    }
}

#[tokio::test]
async fn a_token_signed_by_the_identity_providers_key_is_accepted() {
    let key = new_key("key-1");
    let idp = idp(vec![key.jwk.clone()]).await;
    let app = app_with(&idp).await;
    let data = app
        .ok(
            &bearer(sign(&key, Some("key-1"), "user_2abc", 600)),
            "{ viewer { user { email } } }",
            json!({}),
        )
        .await;
    assert_eq!(data["viewer"]["user"]["email"], "user_2abc@idp.example");
    // A single-key set also verifies a token without `kid`.
    app.ok(
        &bearer(sign(&key, None, "user_2abc", 600)),
        "{ viewer { role } }",
        json!({}),
    )
    .await;
    // HS256 development tokens keep working beside the provider's.
    app.ok(&Caller::user("dev"), "{ viewer { role } }", json!({}))
        .await;
}

#[tokio::test]
async fn forged_expired_and_foreign_issuer_tokens_are_refused() {
    let key = new_key("key-1");
    let idp = idp(vec![key.jwk.clone()]).await;
    let app = app_with(&idp).await;
    let impostor = new_key("key-1");
    let cases = [
        (
            "signed by another key with the same kid",
            sign(&impostor, Some("key-1"), "u", 600),
        ),
        ("expired", sign(&key, Some("key-1"), "u", -3600)),
        ("unknown kid", sign(&key, Some("nope"), "u", 600)),
    ];
    for (what, token) in cases {
        let (status, body) = app
            .post(&bearer(token), "{ viewer { role } }", json!({}))
            .await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(
            error_code(&body).as_deref(),
            Some("UNAUTHENTICATED"),
            "{what}"
        );
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("key-1".into());
    let exp = chrono::Utc::now().timestamp() + 600;
    let other_issuer = jsonwebtoken::encode(
        &header,
        &json!({"sub": "u", "exp": exp, "iss": "https://evil.example/"}),
        &key.encoding,
    )
    .unwrap();
    let (status, body) = app
        .post(&bearer(other_issuer), "{ viewer { role } }", json!({}))
        .await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_on_first_sight_and_unknown_kids_do_not_hammer_the_provider() {
    let old = new_key("key-1");
    let idp = idp(vec![old.jwk.clone()]).await;
    let app = app_with(&idp).await;
    let after_start = idp.fetches.load(Ordering::SeqCst);
    assert_eq!(after_start, 1, "the key set is fetched once at start-up");

    // The provider rotates: a token signed with the new key triggers one refetch and is accepted.
    let new = new_key("key-2");
    idp.keys.lock().await.push(new.jwk.clone());
    app.ok(
        &bearer(sign(&new, Some(&new.kid), "rotated", 600)),
        "{ viewer { role } }",
        json!({}),
    )
    .await;
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);

    // Made-up key ids right after a fetch are refused from the cache, without new fetches.
    for i in 0..5 {
        let (status, _) = app
            .post(
                &bearer(sign(&new, Some(&format!("bogus-{i}")), "x", 600)),
                "{ viewer { role } }",
                json!({}),
            )
            .await;
        assert_eq!(status, 401);
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
    // Known keys keep verifying from the cache.
    app.ok(
        &bearer(sign(&old, Some(&old.kid), "still-valid", 600)),
        "{ viewer { role } }",
        json!({}),
    )
    .await;
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);
}

/// A token signed by `key` (kid `key-1`) with exactly these claims, plus `iss` and a 10-minute `exp`
/// unless given.
fn sign_claims(key: &IdpKey, mut claims: Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    let obj = claims.as_object_mut().unwrap();
    obj.entry("iss").or_insert(json!("https://idp.example/"));
    obj.entry("exp")
        .or_insert(json!(chrono::Utc::now().timestamp() + 600));
    jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
}

#[tokio::test]
async fn identity_provider_tokens_honour_nbf_and_iat_with_the_leeway() {
    let key = new_key("key-1");
    let idp = idp(vec![key.jwk.clone()]).await;
    let app = app_with(&idp).await;
    let now = chrono::Utc::now().timestamp();
    let refused = [
        (
            "nbf an hour ahead",
            json!({"sub": "u", "nbf": now + 3600}),
            "token is not valid yet",
        ),
        (
            "iat an hour ahead",
            json!({"sub": "u", "iat": now + 3600}),
            "token was issued in the future",
        ),
    ];
    for (what, claims, message) in refused {
        let (status, body) = app
            .post(
                &bearer(sign_claims(&key, claims)),
                "{ viewer { role } }",
                json!({}),
            )
            .await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(
            error_code(&body).as_deref(),
            Some("UNAUTHENTICATED"),
            "{what}"
        );
        assert_eq!(body["errors"][0]["message"], message, "{what}: {body}");
    }
    for (what, claims) in [
        ("nbf 10 s ahead", json!({"sub": "u", "nbf": now + 10})),
        ("iat 10 s ahead", json!({"sub": "u", "iat": now + 10})),
        (
            "nbf and iat in the past",
            json!({"sub": "u", "nbf": now - 60, "iat": now - 3600}),
        ),
    ] {
        let (status, body) = app
            .post(
                &bearer(sign_claims(&key, claims)),
                "{ viewer { user { id } } }",
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{what}: {body}");
        assert!(
            body["data"]["viewer"]["user"]["id"].is_string(),
            "{what}: {body}"
        );
    }
}

#[tokio::test]
async fn an_identity_provider_must_not_say_the_invited_email_is_unverified() {
    let key = new_key("key-1");
    let idp = idp(vec![key.jwk.clone()]).await;
    let app = app_with(&idp).await;
    let org = crate::common::org_fixture(&app, "acme").await;
    let invite =
        "mutation($e: String!) { inviteMember(input: {email: $e, role: AGENT}) { token } }";
    let accept = "mutation($t: String!) { acceptInvitation(token: $t) { role } }";
    let token = |email: &'static str| {
        let admin = org.admin.clone();
        let app = &app;
        async move {
            app.ok(&admin, invite, json!({"e": email})).await["inviteMember"]["token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let ida = token("ida@idp.example").await;

    // The right address, but not verified by the provider (as a boolean or as a string): refused.
    for verified in [json!(false), json!("false")] {
        let unverified = sign_claims(
            &key,
            json!({"sub": "ida", "email": "ida@idp.example", "email_verified": verified}),
        );
        let (status, body) = app
            .post(&bearer(unverified), accept, json!({"t": ida}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(error_code(&body).as_deref(), Some("FORBIDDEN"), "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("i***@idp.example"), "{message}");
        assert!(message.contains("not verified"), "{message}");
    }
    // Verified, she joins with the same token.
    let verified = sign_claims(
        &key,
        json!({"sub": "ida", "email": "ida@idp.example", "email_verified": true}),
    );
    let data = app.ok(&bearer(verified), accept, json!({"t": ida})).await;
    assert_eq!(data["acceptInvitation"]["role"], "AGENT");

    // A provider that does not send `email_verified` at all is taken at its word.
    let joe = token("joe@idp.example").await;
    let no_claim = sign_claims(&key, json!({"sub": "joe", "email": "Joe@IDP.example"}));
    let data = app.ok(&bearer(no_claim), accept, json!({"t": joe})).await;
    assert_eq!(data["acceptInvitation"]["role"], "AGENT");

    let members = app
        .ok(
            &org.owner,
            "{ members { totalCount } invitations { id } }",
            json!({}),
        )
        .await;
    assert_eq!(members["members"]["totalCount"], 6, "{members}");
    assert_eq!(members["invitations"], json!([]));
}

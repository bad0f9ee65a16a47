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

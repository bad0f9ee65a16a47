//! Authentication: turning an `Authorization: Bearer …` header into [`Credentials`], and minting
//! development tokens. Who the caller is *in an organization* is decided by PostgreSQL when the
//! operation's transaction opens (memberships and API keys are read there, on every request).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::db::Credentials;
use crate::error::{AppError, AppResult};
use crate::identity::jwks::{self, Jwks};

/// Clock skew tolerated between deskgraph and the token's issuer, in seconds: a token is accepted up to
/// this long after its `exp`, and this long before its `nbf` or `iat`.
pub const LEEWAY_SECS: u64 = 30;

/// Prefix of every API key secret; tells keys and JWTs apart and makes leaked keys greppable.
pub const API_KEY_PREFIX: &str = "dgk_";

/// Claims deskgraph reads from a JWT.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// The identity provider's subject: any string, e.g. `user_2abc`.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the identity provider verified `email` (OpenID Connect). Absent in development tokens.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_bool"
    )]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Default organization when the request has no `x-org-id` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    pub exp: u64,
    /// Not before: refused until then (with [`LEEWAY_SECS`] of tolerance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at: refused when more than [`LEEWAY_SECS`] in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// `email_verified` as a boolean, or as the string `"true"`/`"false"` some providers send; any other
/// value counts as not verified.
fn lenient_bool<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(de)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(b),
        Some(serde_json::Value::String(s)) => Some(s.trim().eq_ignore_ascii_case("true")),
        Some(_) => Some(false),
    })
}

/// Verifies JWTs: HS256 with a shared secret (development, simple deployments), and RS256/ES256/…
/// with the public keys of an identity provider's JWKS.
pub struct JwtVerifier {
    secret: Option<DecodingKey>,
    jwks: Option<Jwks>,
    issuer: String,
    audience: String,
}

fn unauthenticated(err: &jsonwebtoken::errors::Error) -> AppError {
    use jsonwebtoken::errors::ErrorKind;
    let why = match err.kind() {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token is not valid yet",
        ErrorKind::InvalidSignature => "token signature is invalid",
        ErrorKind::InvalidIssuer => "token issuer is not accepted",
        ErrorKind::InvalidAudience => "token audience is not accepted",
        ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
        ErrorKind::InvalidAlgorithm => "token algorithm is not accepted",
        _ => "token is malformed",
    };
    AppError::Unauthenticated(why.into())
}

impl JwtVerifier {
    pub fn new(secret: &str, issuer: &str, audience: &str) -> Self {
        Self {
            secret: (!secret.is_empty()).then(|| DecodingKey::from_secret(secret.as_bytes())),
            jwks: None,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// Also accepts tokens signed by the keys published at `jwks_url`.
    pub fn with_jwks(mut self, jwks: Jwks) -> Self {
        self.jwks = Some(jwks);
        self
    }

    pub fn jwks(&self) -> Option<&Jwks> {
        self.jwks.as_ref()
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        // `nbf` is checked when present; `iat` (which jsonwebtoken does not check) in `verify`.
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if !self.issuer.is_empty() {
            validation.set_issuer(&[&self.issuer]);
        }
        if self.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[&self.audience]);
        }
        validation
    }

    pub async fn verify(&self, token: &str) -> AppResult<Claims> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| unauthenticated(&e))?;
        let (key, algorithm) = if header.alg == Algorithm::HS256 {
            let key = self.secret.clone().ok_or_else(|| {
                AppError::Unauthenticated(
                    "this server accepts no HS256 tokens (DESKGRAPH_JWT_SECRET is unset)".into(),
                )
            })?;
            (key, Algorithm::HS256)
        } else if jwks::ACCEPTED.contains(&header.alg) {
            let jwks = self.jwks.as_ref().ok_or_else(|| {
                AppError::Unauthenticated(
                    "this server accepts no signed-by-key tokens (DESKGRAPH_JWKS_URL is unset)"
                        .into(),
                )
            })?;
            let (key, declared) = jwks.key(header.kid.as_deref()).await.ok_or_else(|| {
                AppError::Unauthenticated("token is signed by an unknown key".into())
            })?;
            if declared.is_some_and(|alg| alg != header.alg) {
                return Err(AppError::Unauthenticated(
                    "token algorithm does not match its key".into(),
                ));
            }
            (key, header.alg)
        } else {
            return Err(AppError::Unauthenticated(
                "token algorithm is not accepted".into(),
            ));
        };
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &self.validation(algorithm))
            .map_err(|e| unauthenticated(&e))?
            .claims;
        if claims
            .iat
            .is_some_and(|iat| iat > jsonwebtoken::get_current_timestamp() + LEEWAY_SECS)
        {
            return Err(AppError::Unauthenticated(
                "token was issued in the future".into(),
            ));
        }
        Ok(claims)
    }
}

/// Mints an HS256 development token (`deskgraph token`, `demo`, tests).
pub fn mint_token(
    secret: &str,
    sub: &str,
    email: Option<&str>,
    name: Option<&str>,
    org_id: Option<Uuid>,
    ttl_secs: u64,
) -> anyhow::Result<String> {
    anyhow::ensure!(!secret.is_empty(), "DESKGRAPH_JWT_SECRET is not set");
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: sub.to_owned(),
        email: email.map(str::to_owned),
        email_verified: None,
        name: name.map(str::to_owned),
        org_id: org_id.map(|id| id.to_string()),
        exp: now + ttl_secs,
        nbf: None,
        iat: Some(now),
        iss: None,
        aud: None,
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

/// sha256 of a secret; secrets (API keys, invitation tokens) are stored only as this.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A new random secret with the given prefix: `{prefix}{32 random bytes, hex}`.
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// Who may accept an invitation in this operation, from the caller's token and
/// `DESKGRAPH_INVITATIONS_BIND_EMAIL`; the executor puts it into every operation's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvitationBinding {
    /// Binding is off: whoever holds an invitation token may accept it.
    Off,
    /// The caller's e-mail, trimmed and lower-cased; the identity provider did not say it is
    /// unverified (`email_verified` is true or absent).
    Email(String),
    /// The caller's token carries no e-mail (or is an API key).
    NoEmail,
    /// The identity provider says the caller's e-mail is not verified (`email_verified: false`).
    Unverified,
}

impl InvitationBinding {
    pub fn new(credentials: &Credentials, bind: bool) -> Self {
        if !bind {
            return Self::Off;
        }
        let Credentials::User {
            email,
            email_verified,
            ..
        } = credentials
        else {
            return Self::NoEmail;
        };
        match email.as_deref().map(normalize_email) {
            None => Self::NoEmail,
            Some(e) if e.is_empty() => Self::NoEmail,
            Some(_) if *email_verified == Some(false) => Self::Unverified,
            Some(e) => Self::Email(e),
        }
    }

    /// The e-mail `auth_private.accept_invitation` compares with the invitation's: `None` accepts any
    /// caller, `""` (no verified e-mail) none.
    pub fn bound_email(&self) -> Option<&str> {
        match self {
            Self::Off => None,
            Self::Email(e) => Some(e),
            Self::NoEmail | Self::Unverified => Some(""),
        }
    }
}

/// An e-mail as invitations store it: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Parses the `Authorization` and `x-org-id` headers into credentials.
pub async fn credentials_from_headers(
    verifier: &JwtVerifier,
    authorization: Option<&str>,
    org_header: Option<&str>,
) -> AppResult<Credentials> {
    authenticate(verifier, authorization, org_header)
        .await
        .map(|a| a.credentials)
}

/// Verified credentials, and until when they hold.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub credentials: Credentials,
    /// A JWT's `exp` (seconds since the epoch); `None` for API keys, which hold until revoked.
    pub expires_at: Option<u64>,
}

/// Like [`credentials_from_headers`], keeping the token's expiry (a websocket outlives requests and
/// is closed when its token expires).
pub async fn authenticate(
    verifier: &JwtVerifier,
    authorization: Option<&str>,
    org_header: Option<&str>,
) -> AppResult<Authenticated> {
    let header = authorization
        .ok_or_else(|| AppError::Unauthenticated("missing Authorization header".into()))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AppError::Unauthenticated("Authorization must be `Bearer <token>`".into())
        })?;
    let org_header = org_header.map(str::trim).filter(|s| !s.is_empty());
    let parse_org = |raw: &str| {
        Uuid::parse_str(raw).map_err(|_| {
            AppError::invalid_field("x-org-id", "x-org-id must be an organization id (UUID)")
        })
    };
    if token.starts_with(API_KEY_PREFIX) {
        // The key's organization is fixed; a header naming another one is refused once the key is
        // resolved.
        let org_id = org_header.map(parse_org).transpose()?;
        return Ok(Authenticated {
            credentials: Credentials::ApiKey {
                secret_hash: hash_secret(token),
                org_id,
            },
            expires_at: None,
        });
    }
    let claims = verifier.verify(token).await?;
    if claims.sub.is_empty() || claims.sub.chars().count() > 255 {
        return Err(AppError::Unauthenticated(
            "token subject must be 1 to 255 characters".into(),
        ));
    }
    let org_id = match org_header {
        Some(raw) => Some(parse_org(raw)?),
        None => claims.org_id.as_deref().map(parse_org).transpose()?,
    };
    Ok(Authenticated {
        credentials: Credentials::User {
            subject: claims.sub,
            email: claims.email,
            email_verified: claims.email_verified,
            name: claims.name,
            org_id,
        },
        expires_at: Some(claims.exp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "test-secret";

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(SECRET, "", "")
    }

    #[tokio::test]
    async fn a_minted_token_verifies_with_its_claims() {
        let org = Uuid::new_v4();
        let token = mint_token(
            SECRET,
            "user_2abc",
            Some("a@b.example"),
            Some("A"),
            Some(org),
            60,
        )
        .unwrap();
        let creds = credentials_from_headers(&verifier(), Some(&format!("Bearer {token}")), None)
            .await
            .unwrap();
        match creds {
            Credentials::User {
                subject,
                email,
                org_id,
                ..
            } => {
                assert_eq!(subject, "user_2abc");
                assert_eq!(email.as_deref(), Some("a@b.example"));
                assert_eq!(org_id, Some(org));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_org_header_wins_over_the_claim() {
        let (claim_org, header_org) = (Uuid::new_v4(), Uuid::new_v4());
        let token = mint_token(SECRET, "u", None, None, Some(claim_org), 60).unwrap();
        let creds = credentials_from_headers(
            &verifier(),
            Some(&format!("Bearer {token}")),
            Some(&header_org.to_string()),
        )
        .await
        .unwrap();
        assert!(matches!(creds, Credentials::User { org_id: Some(o), .. } if o == header_org));
    }

    #[tokio::test]
    async fn wrong_signature_missing_and_malformed_tokens_are_unauthenticated() {
        let forged = mint_token("another-secret", "u", None, None, None, 60).unwrap();
        for header in [
            None,
            Some("Basic abc".to_owned()),
            Some("Bearer not-a-jwt".to_owned()),
            Some(format!("Bearer {forged}")),
        ] {
            let err = credentials_from_headers(&verifier(), header.as_deref(), None)
                .await
                .unwrap_err();
            assert!(
                matches!(err, AppError::Unauthenticated(_)),
                "{header:?}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_invalid_org_header_is_bad_input() {
        let token = mint_token(SECRET, "u", None, None, None, 60).unwrap();
        let err =
            credentials_from_headers(&verifier(), Some(&format!("Bearer {token}")), Some("acme"))
                .await
                .unwrap_err();
        assert!(matches!(err, AppError::BadInput { .. }));
    }

    #[test]
    fn invitations_bind_the_normalized_email_unless_the_provider_says_it_is_unverified() {
        let user = |email: Option<&str>, email_verified: Option<bool>| Credentials::User {
            subject: "u".into(),
            email: email.map(str::to_owned),
            email_verified,
            name: None,
            org_id: None,
        };
        let bind = |c: &Credentials| InvitationBinding::new(c, true);
        let sam = InvitationBinding::Email("sam@initech.example".into());
        assert_eq!(bind(&user(Some(" Sam@Initech.example "), None)), sam);
        assert_eq!(bind(&user(Some("sam@initech.example"), Some(true))), sam);
        assert_eq!(
            bind(&user(Some("sam@initech.example"), Some(false))),
            InvitationBinding::Unverified
        );
        assert_eq!(bind(&user(None, Some(true))), InvitationBinding::NoEmail);
        assert_eq!(bind(&user(Some("  "), None)), InvitationBinding::NoEmail);
        assert_eq!(InvitationBinding::NoEmail.bound_email(), Some(""));
        let off = InvitationBinding::new(&user(None, Some(false)), false);
        assert_eq!(off, InvitationBinding::Off);
        assert_eq!(off.bound_email(), None);
    }

    #[test]
    fn email_verified_is_read_as_a_boolean_or_a_boolean_string() {
        let parse = |v: serde_json::Value| {
            serde_json::from_value::<Claims>(
                serde_json::json!({"sub": "u", "exp": 1, "email_verified": v}),
            )
            .unwrap()
            .email_verified
        };
        assert_eq!(parse(serde_json::json!(true)), Some(true));
        assert_eq!(parse(serde_json::json!("TRUE")), Some(true));
        assert_eq!(parse(serde_json::json!("false")), Some(false));
        assert_eq!(parse(serde_json::json!(1)), Some(false));
        assert_eq!(parse(serde_json::Value::Null), None);
        let absent: Claims =
            serde_json::from_value(serde_json::json!({"sub": "u", "exp": 1})).unwrap();
        assert_eq!(absent.email_verified, None);
    }

    #[tokio::test]
    async fn api_keys_are_recognised_by_prefix_and_hashed() {
        let key = new_secret(API_KEY_PREFIX);
        let creds = credentials_from_headers(&verifier(), Some(&format!("Bearer {key}")), None)
            .await
            .unwrap();
        assert!(
            matches!(creds, Credentials::ApiKey { secret_hash, org_id: None } if secret_hash == hash_secret(&key))
        );
    }
}

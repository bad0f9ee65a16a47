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

/// Prefix of every API key secret; tells keys and JWTs apart and makes leaked keys greppable.
pub const API_KEY_PREFIX: &str = "dgk_";

/// Claims deskgraph reads from a JWT.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// The identity provider's subject: any string, e.g. `user_2abc`.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Default organization when the request has no `x-org-id` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
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
        validation.leeway = 30;
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
        jsonwebtoken::decode::<Claims>(token, &key, &self.validation(algorithm))
            .map(|data| data.claims)
            .map_err(|e| unauthenticated(&e))
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
        name: name.map(str::to_owned),
        org_id: org_id.map(|id| id.to_string()),
        exp: now + ttl_secs,
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

/// Parses the `Authorization` and `x-org-id` headers into credentials.
pub async fn credentials_from_headers(
    verifier: &JwtVerifier,
    authorization: Option<&str>,
    org_header: Option<&str>,
) -> AppResult<Credentials> {
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
        return Ok(Credentials::ApiKey {
            secret_hash: hash_secret(token),
            org_id,
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
    Ok(Credentials::User {
        subject: claims.sub,
        email: claims.email,
        name: claims.name,
        org_id,
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

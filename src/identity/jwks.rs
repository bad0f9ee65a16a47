//! Public keys of an external identity provider (Auth0, Clerk, Keycloak, Cognito, …), fetched from its
//! JWKS endpoint and cached, so RS256/ES256/EdDSA tokens can be verified without a shared secret.
//!
//! Keys are looked up by the token's `kid`. An unknown `kid` (the provider rotated its keys) triggers
//! a refetch, at most once per [`REFETCH_INTERVAL`] so that tokens with made-up key ids cannot make us
//! hammer the provider; the whole set is also refreshed after [`MAX_AGE`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::RwLock;

/// How long a fetched key set is trusted before it is fetched again.
pub const MAX_AGE: Duration = Duration::from_secs(600);
/// The least time between two fetches triggered by unknown key ids.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Asymmetric algorithms accepted from a JWKS; HS* never comes from a public key set.
pub const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

#[derive(Clone)]
struct Key {
    decoding: DecodingKey,
    /// The algorithm the key is declared for, when the set says.
    algorithm: Option<Algorithm>,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, Key>,
    /// A key without `kid`, used for tokens without one when the set has exactly one key.
    only: Option<Key>,
    fetched_at: Option<Instant>,
    /// Last fetch triggered by a request (an unknown key id, or a stale set); throttles them.
    attempted_at: Option<Instant>,
}

pub struct Jwks {
    url: String,
    http: reqwest::Client,
    cache: RwLock<Cache>,
}

fn key_of(jwk: &Jwk) -> Option<Key> {
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    let algorithm = jwk
        .common
        .key_algorithm
        .and_then(|a| a.to_string().parse::<Algorithm>().ok());
    Some(Key {
        decoding,
        algorithm,
    })
}

impl Jwks {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        crate::crypto::install();
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .context("failed to build the JWKS HTTP client")?;
        Ok(Self {
            url: url.to_owned(),
            http,
            cache: RwLock::new(Cache::default()),
        })
    }

    /// Fetches the key set now.
    pub async fn refresh(&self) -> anyhow::Result<usize> {
        let set: JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("failed to fetch the JWKS at {}", self.url))?
            .json()
            .await
            .context("the JWKS endpoint did not return a JSON Web Key Set")?;
        let mut keys = HashMap::new();
        let mut unnamed = Vec::new();
        for jwk in &set.keys {
            let Some(key) = key_of(jwk) else {
                tracing::debug!(kid = ?jwk.common.key_id, "skipping a JWK of an unsupported kind");
                continue;
            };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.insert(kid.clone(), key);
                }
                None => unnamed.push(key),
            }
        }
        let count = keys.len() + unnamed.len();
        let only = match (keys.len(), unnamed.len()) {
            (0, 1) => unnamed.pop(),
            (1, 0) => keys.values().next().cloned(),
            _ => None,
        };
        let mut cache = self.cache.write().await;
        *cache = Cache {
            keys,
            only,
            fetched_at: Some(Instant::now()),
            attempted_at: cache.attempted_at,
        };
        tracing::info!(url = %self.url, keys = count, "JWKS fetched");
        Ok(count)
    }

    fn lookup(cache: &Cache, kid: Option<&str>) -> Option<Key> {
        match kid {
            Some(kid) => cache.keys.get(kid).cloned(),
            None => cache.only.clone(),
        }
    }

    /// The decoding key for a token's `kid`, and the algorithm it is declared for.
    pub async fn key(&self, kid: Option<&str>) -> Option<(DecodingKey, Option<Algorithm>)> {
        let (found, stale) = {
            let cache = self.cache.read().await;
            let stale = cache.fetched_at.is_none_or(|t| t.elapsed() > MAX_AGE);
            (Self::lookup(&cache, kid), stale)
        };
        if (found.is_none() || stale) && self.claim_refetch().await {
            if let Err(err) = self.refresh().await {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "JWKS refresh failed; keeping the cached keys"
                );
            }
            let cache = self.cache.read().await;
            return Self::lookup(&cache, kid).map(|k| (k.decoding, k.algorithm));
        }
        found.map(|k| (k.decoding, k.algorithm))
    }

    /// Whether this request may fetch the set: at most one request-triggered fetch per
    /// [`REFETCH_INTERVAL`], decided under the write lock so concurrent misses fetch once.
    async fn claim_refetch(&self) -> bool {
        let mut cache = self.cache.write().await;
        if cache
            .attempted_at
            .is_none_or(|t| t.elapsed() > REFETCH_INTERVAL)
        {
            cache.attempted_at = Some(Instant::now());
            true
        } else {
            false
        }
    }
}

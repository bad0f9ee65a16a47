//! Persisted operations: the documents registered in `schema/persisted/*.graphql`, addressed by the
//! sha256 of their text (the `persistedQuery` extension, as Apollo clients send it). API keys with
//! the `analyst` role may run these and nothing else.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;
use async_graphql::{Request, Value};
use sha2::{Digest as _, Sha256};

use crate::error::{AppError, AppResult};

#[derive(Debug, Clone)]
pub struct Persisted {
    /// File stem, e.g. `tickets_export`.
    pub name: String,
    pub query: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Default)]
pub struct PersistedQueries {
    by_hash: HashMap<String, Persisted>,
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl PersistedQueries {
    /// Loads every `*.graphql` file of `dir`. A missing folder means no persisted operations.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut by_hash = HashMap::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(dir = %dir.display(), "no persisted operations folder; analyst keys can run nothing");
                return Ok(Self { by_hash });
            }
            Err(err) => {
                return Err(err).with_context(|| format!("failed to read {}", dir.display()));
            }
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("graphql") {
                continue;
            }
            let query = std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            async_graphql::parser::parse_query(&query)
                .with_context(|| format!("{} is not a valid GraphQL document", path.display()))?;
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let sha256 = sha256_hex(&query);
            by_hash.insert(
                sha256.clone(),
                Persisted {
                    name,
                    query,
                    sha256,
                },
            );
        }
        Ok(Self { by_hash })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Persisted> {
        self.by_hash.values()
    }

    /// Fills in the document of a request that names a persisted operation by hash, and tells whether
    /// the request runs a registered document (by hash, or by sending a registered text verbatim).
    pub fn resolve(&self, request: &mut Request) -> AppResult<Option<&Persisted>> {
        let hash = match request.extensions.get("persistedQuery") {
            Some(Value::Object(pq)) => match pq.get("sha256Hash") {
                Some(Value::String(hash)) => Some(hash.to_ascii_lowercase()),
                _ => {
                    return Err(AppError::invalid_field(
                        "persistedQuery",
                        "persistedQuery needs a sha256Hash",
                    ));
                }
            },
            Some(_) => {
                return Err(AppError::invalid_field(
                    "persistedQuery",
                    "persistedQuery must be an object",
                ));
            }
            None => None,
        };
        match hash {
            Some(hash) => {
                let found = self
                    .by_hash
                    .get(&hash)
                    .ok_or(AppError::PersistedQueryNotFound)?;
                if !request.query.is_empty() && request.query != found.query {
                    return Err(AppError::invalid_field(
                        "query",
                        "query does not match its persistedQuery hash",
                    ));
                }
                request.query = found.query.clone();
                Ok(Some(found))
            }
            None => Ok(self.by_hash.get(&sha256_hex(&request.query))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> PersistedQueries {
        let query = "query Q { viewer { role } }".to_owned();
        let sha256 = sha256_hex(&query);
        PersistedQueries {
            by_hash: HashMap::from([(
                sha256.clone(),
                Persisted {
                    name: "q".into(),
                    query,
                    sha256,
                },
            )]),
        }
    }

    fn with_hash(hash: &str) -> Request {
        let mut pq = async_graphql::indexmap::IndexMap::new();
        pq.insert(async_graphql::Name::new("sha256Hash"), Value::from(hash));
        let mut req = Request::new("");
        req.extensions
            .insert("persistedQuery".into(), Value::Object(pq));
        req
    }

    #[test]
    fn a_registered_hash_fills_in_the_document() {
        let reg = registry();
        let hash = sha256_hex("query Q { viewer { role } }");
        let mut req = with_hash(&hash);
        assert_eq!(
            reg.resolve(&mut req).unwrap().map(|p| p.name.as_str()),
            Some("q")
        );
        assert_eq!(req.query, "query Q { viewer { role } }");
    }

    #[test]
    fn an_unknown_hash_is_persisted_query_not_found() {
        let mut req = with_hash(&"0".repeat(64));
        assert!(matches!(
            registry().resolve(&mut req),
            Err(AppError::PersistedQueryNotFound)
        ));
    }

    #[test]
    fn free_text_is_not_persisted() {
        let mut req = Request::new("{ viewer { role } }");
        assert!(registry().resolve(&mut req).unwrap().is_none());
    }
}

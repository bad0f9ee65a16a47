//! The per-operation DataLoader. It is built on the operation's transaction, caches for the
//! operation, and issues one query per key type per batch, so a list of tickets costs the same number
//! of statements whatever its length.
//!
//! This file holds only the shared machinery. Each module implements `Loader<ItsKey>` for
//! [`DeskLoaderInner`] beside the table it owns (`identity::loaders`, `support::loaders`,
//! `ai::loaders`), usually in three lines through [`by_ids`].

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache};
use uuid::Uuid;

use crate::db::TenantTx;
use crate::error::{AppError, AppResult};

/// The loader's state: the operation's transaction. One instance serves every key type.
pub struct DeskLoaderInner {
    tx: Arc<TenantTx>,
}

impl DeskLoaderInner {
    /// The transaction every batch reads through (under the caller's RLS context).
    pub fn tx(&self) -> &TenantTx {
        &self.tx
    }
}

pub type DeskLoader = DataLoader<DeskLoaderInner, HashMapCache>;

/// Cached for the operation, so values prefetched for a list are not loaded again by its fields.
pub fn desk_loader(tx: Arc<TenantTx>) -> DeskLoader {
    DataLoader::with_cache(
        DeskLoaderInner { tx },
        tokio::spawn,
        HashMapCache::default(),
    )
}

/// Loader errors are shared between every waiting field, hence the `Arc`.
#[derive(Debug, Clone)]
pub struct LoadError(Arc<AppError>);

impl From<LoadError> for AppError {
    fn from(err: LoadError) -> Self {
        // The cause was logged when the batch failed; callers see an internal error.
        (*err.0).clone()
    }
}

fn failed(err: AppError) -> LoadError {
    tracing::error!(error = ?err, "batched load failed");
    LoadError(Arc::new(err))
}

/// A loader key that wraps one id (`WorkspaceKey(ticket.workspace_id)`).
pub trait IdKey: Copy + Eq + Hash + Send + Sync + 'static {
    fn id(self) -> Uuid;
    fn from_id(id: Uuid) -> Self;
}

/// Declares newtype loader keys over a UUID, with their [`IdKey`] impls.
macro_rules! id_keys {
    ($($(#[$meta:meta])* $name:ident;)+) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub struct $name(pub ::uuid::Uuid);

            impl $crate::graphql::loader::IdKey for $name {
                fn id(self) -> ::uuid::Uuid {
                    self.0
                }
                fn from_id(id: ::uuid::Uuid) -> Self {
                    Self(id)
                }
            }
        )+
    };
}
pub(crate) use id_keys;

/// One batch: fetches the rows of `keys` with one call of `fetch` and keys each row by `id_of`. Keys
/// without a row are absent from the map (the loader answers `None` for them).
pub async fn by_ids<K, V, Fut>(
    keys: &[K],
    fetch: impl FnOnce(Vec<Uuid>) -> Fut,
    id_of: impl Fn(&V) -> Uuid,
) -> Result<HashMap<K, V>, LoadError>
where
    K: IdKey,
    Fut: Future<Output = AppResult<Vec<V>>>,
{
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let ids = keys.iter().map(|k| k.id()).collect();
    let rows = fetch(ids).await.map_err(failed)?;
    Ok(rows
        .into_iter()
        .map(|row| (K::from_id(id_of(&row)), row))
        .collect())
}

/// Like [`by_ids`], but answers every key: `value` turns the row found (or `None`) into the value,
/// so "no row" is cached as an answer (a count of zero, no analysis yet) and not loaded again.
pub async fn for_every_key<K, V, W, Fut>(
    keys: &[K],
    fetch: impl FnOnce(Vec<Uuid>) -> Fut,
    id_of: impl Fn(&V) -> Uuid,
    value: impl Fn(Option<V>) -> W,
) -> Result<HashMap<K, W>, LoadError>
where
    K: IdKey,
    Fut: Future<Output = AppResult<Vec<V>>>,
{
    let mut found = by_ids(keys, fetch, id_of).await?;
    Ok(keys.iter().map(|k| (*k, value(found.remove(k)))).collect())
}

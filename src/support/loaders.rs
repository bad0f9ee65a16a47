//! DataLoaders: built per operation on its transaction, one query per key type per batch, so a list of
//! tickets costs the same number of statements whatever its length.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use uuid::Uuid;

use crate::ai::repo::{AnalysisRow, latest_for_tickets};
use crate::db::TenantTx;
use crate::error::AppError;
use crate::identity::repo::{UserRow, users_by_ids};
use crate::support::repo::{WorkspaceRow, comment_counts, workspaces_by_ids};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkspaceKey(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserKey(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommentCountKey(pub Uuid);

/// A ticket's latest analysis, by ticket id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LatestAnalysisKey(pub Uuid);

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

/// The per-operation loader (one instance serves every key type).
pub struct DeskLoaderInner {
    tx: Arc<TenantTx>,
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

impl Loader<WorkspaceKey> for DeskLoaderInner {
    type Value = WorkspaceRow;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[WorkspaceKey],
    ) -> Result<HashMap<WorkspaceKey, Self::Value>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = workspaces_by_ids(&self.tx, &ids).await.map_err(failed)?;
        Ok(rows.into_iter().map(|w| (WorkspaceKey(w.id), w)).collect())
    }
}

impl Loader<UserKey> for DeskLoaderInner {
    type Value = UserRow;
    type Error = LoadError;

    async fn load(&self, keys: &[UserKey]) -> Result<HashMap<UserKey, Self::Value>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = users_by_ids(&self.tx, &ids).await.map_err(failed)?;
        Ok(rows.into_iter().map(|u| (UserKey(u.id), u)).collect())
    }
}

impl Loader<CommentCountKey> for DeskLoaderInner {
    type Value = i64;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[CommentCountKey],
    ) -> Result<HashMap<CommentCountKey, Self::Value>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let counts: HashMap<Uuid, i64> = comment_counts(&self.tx, &ids)
            .await
            .map_err(failed)?
            .into_iter()
            .collect();
        // Tickets without comments have no row; they count zero.
        Ok(ids
            .into_iter()
            .map(|id| (CommentCountKey(id), counts.get(&id).copied().unwrap_or(0)))
            .collect())
    }
}

impl Loader<LatestAnalysisKey> for DeskLoaderInner {
    /// `None` for a ticket never analysed: cached too, so its field does not load again.
    type Value = Option<AnalysisRow>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[LatestAnalysisKey],
    ) -> Result<HashMap<LatestAnalysisKey, Self::Value>, Self::Error> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut rows: HashMap<Uuid, AnalysisRow> = latest_for_tickets(&self.tx, &ids)
            .await
            .map_err(failed)?
            .into_iter()
            .map(|a| (a.ticket_id, a))
            .collect();
        Ok(ids
            .into_iter()
            .map(|id| (LatestAnalysisKey(id), rows.remove(&id)))
            .collect())
    }
}

//! Batched loads of support rows for the per-operation loader.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use super::repo::{WorkspaceRow, comment_counts, workspaces_by_ids};
use crate::graphql::loader::{DeskLoaderInner, LoadError, by_ids, for_every_key, id_keys};

id_keys! {
    /// A workspace, by id.
    WorkspaceKey;
    /// The number of comments of a ticket, by ticket id.
    CommentCountKey;
}

impl Loader<WorkspaceKey> for DeskLoaderInner {
    type Value = WorkspaceRow;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[WorkspaceKey],
    ) -> Result<HashMap<WorkspaceKey, WorkspaceRow>, LoadError> {
        by_ids(
            keys,
            |ids| async move { workspaces_by_ids(self.tx(), &ids).await },
            |w| w.id,
        )
        .await
    }
}

impl Loader<CommentCountKey> for DeskLoaderInner {
    type Value = i64;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[CommentCountKey],
    ) -> Result<HashMap<CommentCountKey, i64>, LoadError> {
        // Tickets without comments have no row; they count zero.
        for_every_key(
            keys,
            |ids| async move { comment_counts(self.tx(), &ids).await },
            |(id, _)| *id,
            |row| row.map_or(0, |(_, n)| n),
        )
        .await
    }
}

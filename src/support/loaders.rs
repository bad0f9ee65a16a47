//! Batched loads of support rows for the per-operation loader.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use super::repo::{
    CommentRow, TicketRow, WorkspaceRow, comment_counts, comments_by_ids, tickets_by_ids,
    workspaces_by_ids,
};
use crate::graphql::loader::{DeskLoaderInner, LoadError, by_ids, for_every_key, id_keys};

id_keys! {
    /// A workspace, by id.
    WorkspaceKey;
    /// The number of comments of a ticket, by ticket id.
    CommentCountKey;
    /// A ticket, by id.
    TicketKey;
    /// A comment, by id.
    CommentKey;
}

impl Loader<TicketKey> for DeskLoaderInner {
    type Value = TicketRow;
    type Error = LoadError;

    async fn load(&self, keys: &[TicketKey]) -> Result<HashMap<TicketKey, TicketRow>, LoadError> {
        by_ids(
            keys,
            |ids| async move { tickets_by_ids(self.tx(), &ids).await },
            |t| t.id,
        )
        .await
    }
}

impl Loader<CommentKey> for DeskLoaderInner {
    type Value = CommentRow;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[CommentKey],
    ) -> Result<HashMap<CommentKey, CommentRow>, LoadError> {
        by_ids(
            keys,
            |ids| async move { comments_by_ids(self.tx(), &ids).await },
            |c| c.id,
        )
        .await
    }
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

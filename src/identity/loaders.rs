//! Batched loads of identity rows for the per-operation loader.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use super::repo::{UserRow, users_by_ids};
use crate::graphql::loader::{DeskLoaderInner, LoadError, by_ids, id_keys};

id_keys! {
    /// A user, by id (assignees, authors, inviters).
    UserKey;
}

impl Loader<UserKey> for DeskLoaderInner {
    type Value = UserRow;
    type Error = LoadError;

    async fn load(&self, keys: &[UserKey]) -> Result<HashMap<UserKey, UserRow>, LoadError> {
        by_ids(
            keys,
            |ids| async move { users_by_ids(self.tx(), &ids).await },
            |u| u.id,
        )
        .await
    }
}

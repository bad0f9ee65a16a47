//! Batched loads of analyses for the per-operation loader.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use super::repo::{AnalysisRow, latest_for_tickets};
use crate::graphql::loader::{DeskLoaderInner, LoadError, for_every_key, id_keys};

id_keys! {
    /// A ticket's latest analysis, by ticket id.
    LatestAnalysisKey;
}

impl Loader<LatestAnalysisKey> for DeskLoaderInner {
    /// `None` for a ticket never analysed: cached too, so its field does not load again.
    type Value = Option<AnalysisRow>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[LatestAnalysisKey],
    ) -> Result<HashMap<LatestAnalysisKey, Self::Value>, LoadError> {
        for_every_key(
            keys,
            |ids| async move { latest_for_tickets(self.tx(), &ids).await },
            |a| a.ticket_id,
            |row| row,
        )
        .await
    }
}

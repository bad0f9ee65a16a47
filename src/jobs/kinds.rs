//! Job kinds, by name. A module that must set off work in a module above it enqueues that module's
//! job kind by name from here, so neither imports the other (billing queues the AI pipeline's
//! `resume_analyses` this way). Handlers are registered by the module that does the work
//! (`ai::handlers`).

use serde_json::json;

use super::NewJob;

/// Analyses one ticket version (enqueued by `ai::request` with the credit hold; handled by `ai`).
pub const ANALYZE_TICKET: &str = "analyze_ticket";

/// Holds for and queues the organization's analyses that wait for credits, oldest first (enqueued
/// by `billing` when credits come in; handled by `ai`).
pub const RESUME_ANALYSES: &str = "resume_analyses";

/// Brings a ticket's vector payload in step with the ticket, or deletes its point (enqueued and
/// handled by `ai`).
pub const SYNC_TICKET_VECTOR: &str = "sync_ticket_vector";

/// Embeds a ticket's current text and stores its vector in Qdrant, retrying until Qdrant answers
/// (enqueued by `ai` when an analysis could not store the vector and, debounced, when a ticket's text
/// is edited; one per ticket; handled by `ai`).
pub const UPSERT_TICKET_VECTOR: &str = "upsert_ticket_vector";

/// Re-indexes one batch of the organization's tickets into the current Qdrant collection (the one of
/// the embedding model and dimension), then queues the next batch (enqueued by `deskgraph reindex`
/// and by itself; one queued or running per organization; handled by `ai::reindex`).
pub const REINDEX_VECTORS: &str = "reindex_vectors";

/// The current organization's `resume_analyses` job: one queued at a time, after interactive work.
pub fn resume_analyses() -> NewJob<'static> {
    NewJob {
        unique_key: Some("resume".to_owned()),
        priority: 3,
        ..NewJob::new(RESUME_ANALYSES, json!({}))
    }
}

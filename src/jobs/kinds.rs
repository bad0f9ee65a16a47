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

/// The current organization's `resume_analyses` job: one queued at a time, after interactive work.
pub fn resume_analyses() -> NewJob<'static> {
    NewJob {
        unique_key: Some("resume".to_owned()),
        priority: 3,
        ..NewJob::new(RESUME_ANALYSES, json!({}))
    }
}

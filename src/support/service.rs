//! Flows of the support desk that set work in motion in the modules above it.
//!
//! support sits below `ai` in the dependency order, yet filing a ticket must request its analysis in
//! the same transaction (the ticket, its credit hold and its job commit together or not at all). So
//! support declares what it needs as [`TicketFollowUp`], fires it here, and the module above
//! implements it (`ai::Ai`); the schema's executor hands the implementation to resolvers, and `demo`
//! passes it directly. One flow, written once, with no import pointing up.

use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::repo::{self, NewTicket, TicketRow};
use crate::db::TenantTx;
use crate::error::AppResult;

/// Work that follows a ticket's life, done in the caller's transaction by the modules above support.
pub trait TicketFollowUp: Send + Sync {
    /// A ticket was filed: request its analysis (hold credits, queue the job).
    fn filed<'a>(&'a self, tx: &'a TenantTx, ticket: &'a TicketRow)
    -> BoxFuture<'a, AppResult<()>>;

    /// A ticket's status changed: searches filter on it, so derived copies (vector payloads) follow.
    fn status_changed<'a>(
        &'a self,
        tx: &'a TenantTx,
        ticket_id: Uuid,
    ) -> BoxFuture<'a, AppResult<()>>;

    /// A ticket's title or description changed: derived copies of its text (its embedding) follow.
    fn text_changed<'a>(
        &'a self,
        tx: &'a TenantTx,
        ticket_id: Uuid,
    ) -> BoxFuture<'a, AppResult<()>>;
}

/// Files a ticket and sets its follow-up work in motion, in the caller's transaction.
pub async fn file_ticket(
    tx: &TenantTx,
    follow_up: &dyn TicketFollowUp,
    ticket: &NewTicket<'_>,
) -> AppResult<TicketRow> {
    let row = repo::insert_ticket(tx, ticket).await?;
    follow_up.filed(tx, &row).await?;
    Ok(row)
}

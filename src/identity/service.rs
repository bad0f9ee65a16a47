//! Identity flows that span modules: creating an organization.
//!
//! A new organization also starts with this month's allowance of its plan, which is billing's
//! business, and billing sits above identity. identity declares the step as [`OrganizationFollowUp`]
//! and billing implements it (`billing::StartingAllowance`); the schema's executor hands it to the
//! resolver. One flow, written once, with no import pointing up.

use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::repo::{self, OrganizationRow};
use crate::authz::Role;
use crate::db::{TenantContext, TenantTx};
use crate::error::AppResult;

/// Work the modules above identity do for a new organization, in its creator's transaction and with
/// the new organization as the tenant context (the creator acting as its owner).
pub trait OrganizationFollowUp: Send + Sync {
    fn created<'a>(&'a self, tx: &'a TenantTx) -> BoxFuture<'a, AppResult<()>>;
}

/// Creates an organization with `owner` as its owner (the database adds the membership and the credit
/// balance), then runs the follow-up work. The transaction acts as the new organization for those
/// statements and as the caller again afterwards.
pub async fn create_organization(
    tx: &TenantTx,
    follow_up: &dyn OrganizationFollowUp,
    owner: Uuid,
    slug: &str,
    name: &str,
) -> AppResult<OrganizationRow> {
    let id = Uuid::now_v7();
    // Act as the new organization's owner for the insert (RLS checks org and role), then restore.
    let previous = tx
        .set_context(TenantContext {
            org_id: Some(id),
            user_id: Some(owner),
            api_key_id: None,
            role: Some(Role::Owner),
            system: false,
        })
        .await?;
    // On failure the transaction is aborted: no later statement can run in it, so there is no
    // context to restore. On success, restore before anything else runs.
    let org = repo::insert_organization(tx, id, slug, name, owner).await?;
    follow_up.created(tx).await?;
    tx.set_context(previous).await?;
    tracing::info!(org_id = %id, %slug, "organization created");
    Ok(org)
}

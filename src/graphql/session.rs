//! The per-operation session every resolver reaches through the GraphQL context.

use std::any::type_name;
use std::sync::Arc;

use async_graphql::Context;
use uuid::Uuid;

use super::loader::{DeskLoader, desk_loader};
use crate::authz::{Authz, Object, Role};
use crate::db::{TenantContext, TenantTx};
use crate::error::{AppError, AppResult};

/// What one operation runs on: its tenant transaction, the authorization policy and the batched
/// loader (which reads through the same transaction, so it sees what the operation wrote). Clones
/// share all three: live deliveries of one subscriber identity run several operations on one session.
#[derive(Clone)]
pub struct Session {
    pub tx: Arc<TenantTx>,
    pub authz: Arc<Authz>,
    pub loader: Arc<DeskLoader>,
}

impl Session {
    pub fn new(tx: Arc<TenantTx>, authz: Arc<Authz>) -> Self {
        let loader = Arc::new(desk_loader(tx.clone()));
        Self { tx, authz, loader }
    }

    pub fn context(&self) -> TenantContext {
        self.tx.context()
    }

    /// The caller's role, if the operation's role may do `action` on `object`; FORBIDDEN otherwise.
    pub fn require(&self, object: Object, action: &str) -> AppResult<Role> {
        self.authz.require(self.tx.context().role, object, action)
    }

    /// The signed-in user; API keys act for an organization, not a person, and get FORBIDDEN.
    pub fn user_id(&self) -> AppResult<Uuid> {
        self.tx
            .context()
            .user_id
            .ok_or_else(|| AppError::forbidden("this operation needs a user token, not an API key"))
    }
}

/// The operation's [`Session`].
pub fn session<'a>(ctx: &Context<'a>) -> AppResult<&'a Session> {
    handle::<Session>(ctx)
}

/// Per-operation data of type `T` that the executor put into the request (the session, a module's
/// service handle such as the AI pipeline). Missing data is a wiring bug: an internal error.
pub fn handle<'a, T: std::any::Any + Send + Sync>(ctx: &Context<'a>) -> AppResult<&'a T> {
    ctx.data::<T>()
        .map_err(|_| anyhow::anyhow!("operation has no {}", type_name::<T>()).into())
}

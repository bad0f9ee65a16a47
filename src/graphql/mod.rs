//! The GraphQL schema: query and mutation roots merged from the modules, limits, and the executor
//! that runs one operation in one tenant transaction.

pub mod executor;
pub mod pagination;
pub mod persisted;

use std::sync::Arc;

use async_graphql::{Context, EmptySubscription, ID, MergedObject, Schema};
use uuid::Uuid;

use crate::audit::graphql::AuditQuery;
use crate::authz::{Authz, Object};
use crate::billing::graphql::{BillingMutation, BillingQuery};
use crate::config::ServerConfig;
use crate::db::{TenantContext, TenantTx};
use crate::error::{AppError, AppResult};
use crate::identity::Role;
use crate::identity::graphql::{IdentityMutation, IdentityQuery};
use crate::support::graphql::{SupportMutation, SupportQuery};

#[derive(MergedObject, Default)]
pub struct QueryRoot(IdentityQuery, SupportQuery, BillingQuery, AuditQuery);

#[derive(MergedObject, Default)]
pub struct MutationRoot(
    IdentityMutation,
    SupportMutation,
    BillingMutation,
    crate::ai::graphql::AiMutation,
);

pub type DeskSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Limits that keep one query from costing the server too much.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_complexity: usize,
}

impl Limits {
    pub fn from_config(cfg: &ServerConfig) -> Self {
        Self {
            max_depth: cfg.max_depth,
            max_complexity: cfg.max_complexity,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 15,
            max_complexity: 5_000,
        }
    }
}

pub fn build_schema(limits: Limits) -> DeskSchema {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .limit_depth(limits.max_depth)
    .limit_complexity(limits.max_complexity)
    .finish()
}

/// The SDL of the schema, as committed in `schema/schema.graphql`.
pub fn sdl() -> String {
    build_schema(Limits::default()).sdl()
}

/// Per-operation state every resolver reaches through the context.
pub struct Session {
    pub tx: Arc<TenantTx>,
    pub authz: Arc<Authz>,
}

impl Session {
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

pub fn session<'a>(ctx: &Context<'a>) -> AppResult<&'a Session> {
    ctx.data::<Session>()
        .map_err(|_| anyhow::anyhow!("operation has no session").into())
}

/// Parses a GraphQL ID as a UUID; anything else is BAD_USER_INPUT naming the argument.
pub fn parse_id(field: &'static str, id: &ID) -> AppResult<Uuid> {
    Uuid::parse_str(id.as_str())
        .map_err(|_| AppError::invalid_field(field, format!("{field} is not a valid id")))
}

/// Trims `value` and checks its length in characters.
pub fn text_field(field: &'static str, value: &str, min: usize, max: usize) -> AppResult<String> {
    let value = value.trim();
    let len = value.chars().count();
    if len < min {
        return Err(AppError::invalid_field(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if len > max {
        return Err(AppError::invalid_field(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// A plausible e-mail address (one `@`, something either side, no spaces, ≤ 320 characters).
pub fn email_field(field: &'static str, value: &str) -> AppResult<String> {
    let value = value.trim();
    let ok = value.len() <= 320
        && !value.chars().any(char::is_whitespace)
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
        });
    if !ok {
        return Err(AppError::invalid_field(
            field,
            format!("{field} is not a valid e-mail address"),
        ));
    }
    Ok(value.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_are_trimmed_and_bounded() {
        assert_eq!(text_field("title", "  Hi  ", 1, 200).unwrap(), "Hi");
        assert!(text_field("title", "   ", 1, 200).is_err());
        assert!(text_field("title", &"é".repeat(201), 1, 200).is_err());
        assert!(text_field("title", &"é".repeat(200), 1, 200).is_ok());
    }

    #[test]
    fn emails_are_checked() {
        assert_eq!(
            email_field("email", " Ann@Example.com ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "a b@example.com",
            "ann@example",
        ] {
            assert!(email_field("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_must_be_uuids() {
        assert!(parse_id("id", &ID::from("42")).is_err());
        assert!(parse_id("id", &ID::from(Uuid::new_v4().to_string())).is_ok());
    }
}

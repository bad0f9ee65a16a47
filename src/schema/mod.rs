//! The GraphQL schema: the query, mutation and subscription roots merged from the product modules, the limits,
//! and (in [`executor`]) the engine that runs one operation in one tenant transaction. It sits above
//! every product module and is the only place that knows them all.

pub mod executor;
pub mod persisted;

use async_graphql::{MergedObject, MergedSubscription, Schema};

use crate::ai::graphql::AiMutation;
use crate::analytics::graphql::AnalyticsQuery;
use crate::audit::graphql::AuditQuery;
use crate::billing::graphql::{BillingMutation, BillingQuery};
use crate::config::ServerConfig;
use crate::identity::graphql::{IdentityMutation, IdentityQuery};
use crate::support::graphql::{SupportMutation, SupportQuery, SupportSubscription};

// The fields of `Query`, module by module (their order is the order of the SDL). Plain comments:
// a doc comment here would become the type's description in the SDL.
#[derive(MergedObject, Default)]
pub struct QueryRoot(
    IdentityQuery,
    SupportQuery,
    BillingQuery,
    AuditQuery,
    AnalyticsQuery,
);

// The fields of `Mutation`, module by module (their order is the order of the SDL).
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    IdentityMutation,
    SupportMutation,
    BillingMutation,
    AiMutation,
);

// The fields of `Subscription`, module by module (served over the websocket only).
#[derive(MergedSubscription, Default)]
pub struct SubscriptionRoot(SupportSubscription);

pub type DeskSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

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
        SubscriptionRoot::default(),
    )
    .limit_depth(limits.max_depth)
    .limit_complexity(limits.max_complexity)
    .finish()
}

/// The SDL of the schema, as committed in `schema/schema.graphql`.
pub fn sdl() -> String {
    build_schema(Limits::default()).sdl()
}

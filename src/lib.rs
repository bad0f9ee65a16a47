//! deskgraph: a GraphQL backend for AI-assisted, multi-tenant support desks, in which PostgreSQL row
//! level security keeps organizations apart (see `README.md`).
//!
//! Modules are declared layer by layer, lowest first: a module uses the layers listed before its
//! own and never one listed after it (`tests/it/layers.rs` checks every `crate::` path, with the
//! order inside the platform layer). The one exception is the GraphQL type graph:
//! `support`'s `Ticket` names `ai`'s `TicketAnalysis` and `SimilarTicket`. A lower module that must
//! set off work in a higher one declares a follow-up trait the higher one implements
//! (`support::service::TicketFollowUp`, `identity::service::OrganizationFollowUp`) or enqueues a job
//! kind by name (`jobs::kinds`).

// Platform: errors, settings, the database and its tenant transaction, authorization, observability.
pub mod authz;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod metrics;
pub mod ratelimit;
pub mod secret;
pub mod telemetry;
pub mod text_enum;

// Infrastructure beside the product modules: the job queue and its runtime.
pub mod jobs;

// The resolver kit: per-operation session, input validation, pagination, the shared loader.
pub mod graphql;

// Product modules, lowest first; each owns its tables, SQL, loaders and GraphQL types.
pub mod ai;
pub mod analytics;
pub mod audit;
pub mod billing;
pub mod identity;
pub mod support;

// The schema roots and the executor, above every product module.
pub mod schema;

// The live desk: subscriptions fed by PostgreSQL notifications, run through the schema.
pub mod live;

// Entry points: HTTP, the server and its background tasks, the demo, the command line.
pub mod app;
pub mod cli;
pub mod demo;
pub mod http;

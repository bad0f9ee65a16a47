//! deskgraph: a GraphQL backend for AI-assisted, multi-tenant support desks, in which PostgreSQL row
//! level security keeps organizations apart. See `README.md` and `../shared/DESIGN.md`.

pub mod ai;
pub mod app;
pub mod audit;
pub mod authz;
pub mod billing;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod error;
pub mod graphql;
pub mod http;
pub mod identity;
pub mod jobs;
pub mod metrics;
pub mod ratelimit;
pub mod schema;
pub mod support;
pub mod telemetry;

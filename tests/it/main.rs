//! Integration tests: real PostgreSQL (one database per test), real roles and RLS policies, and a
//! real HTTP server where behaviour crosses HTTP. One test binary so the suite links once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test that meets the unexpected should fail loudly, and helpers are test code"
)]

mod common;

mod ai;
mod analytics;
mod analyzer;
mod audit;
mod auth;
mod bad_input;
mod bench;
mod browser;
mod catalog;
mod cli;
mod credits;
mod demo;
mod fake_openai;
mod graphiql;
mod graphql_over_http;
mod http;
mod isolation;
mod jwks;
mod layers;
mod limits;
mod live;
mod migrate;
mod n_plus_one;
mod outage;
mod pagination;
mod pool;
mod pooler;
mod proxy;
mod queue;
mod rls_sql;
mod roles;
mod schema;
mod tls;
mod ws_client;

//! Identity: users, organizations, memberships, invitations, API keys, and how callers authenticate.

pub mod auth;
pub mod graphql;
pub mod jwks;
pub mod loaders;
pub mod repo;
pub mod service;

//! The audit trail: every write to a tenant table, recorded by triggers in the same transaction and
//! hash-chained per organization (`migrations/V3__audit_log.sql`). This module reads it
//! ([`repo`], [`graphql`]) and checks the chain independently of the database ([`chain`]).

pub mod chain;
pub mod graphql;
pub mod repo;

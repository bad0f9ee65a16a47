//! Integration tests: real PostgreSQL (one database per test), real roles and RLS policies, and a
//! real HTTP server where behaviour crosses HTTP. One test binary so the suite links once.

mod common;

mod isolation;

//! The credits service API. Every function runs on a `TenantTx` and acts for its organization
//! (`app.org_id`); RLS and the ledger trigger do the rest.
//!
//! Idempotency: every entry has a key unique per organization. Writing a key that exists changes
//! nothing and returns the first entry (`Posted::Replayed`), so each operation is safe to repeat and
//! to race from several processes. Keys are namespaced by operation (`grant:…`, `hold:…`,
//! `settle:<hold>`, `allowance:<month>:<plan>`) so that one operation's key can never replay another's.
//!
//! One file per aggregate, re-exported here so that callers write `repo::…`.

mod hold;
mod ledger;
mod plan;

pub use hold::*;
pub use ledger::*;
pub use plan::*;

//! SQL for workspaces, tickets and comments, on the operation's `TenantTx` (RLS scopes every
//! statement to the caller's organization; no statement here names an organization itself).
//!
//! One file per aggregate, re-exported here so that callers write `repo::…`.

mod comment;
mod ticket;
mod workspace;

pub use comment::*;
pub use ticket::*;
pub use workspace::*;

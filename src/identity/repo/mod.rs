//! SQL for identity tables. Every function runs on the operation's `TenantTx`, so row level
//! security scopes it to the caller's organization.
//!
//! One file per aggregate, re-exported here so that callers write `repo::…`.

mod api_key;
mod invitation;
mod member;
mod organization;
mod user;

pub use api_key::*;
pub use invitation::*;
pub use member::*;
pub use organization::*;
pub use user::*;

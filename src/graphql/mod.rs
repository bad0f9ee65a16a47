//! The resolver kit: what every product module's GraphQL code stands on, and nothing above it.
//!
//! - [`session`]: the per-operation [`Session`] (the tenant transaction, authorization, the batched
//!   loader) and [`handle`], the one accessor for per-operation data;
//! - [`input`]: validation of arguments (ids, text, e-mail addresses) into `BAD_USER_INPUT`;
//! - [`big_int`]: the [`BigInt`] scalar, exact 64-bit integers sent as strings (credit amounts);
//! - [`pagination`]: Relay connections with opaque, typed cursors and a page-size cap;
//! - [`loader`]: the shared DataLoader type; each module implements `Loader<ItsKey>` for it next to the
//!   table it owns.
//!
//! The schema roots that merge the modules' queries and mutations live above the modules, in
//! [`crate::schema`].

pub mod big_int;
pub mod input;
pub mod loader;
pub mod pagination;
pub mod session;

pub use big_int::BigInt;
pub use input::{email_field, parse_id, text_field};
pub use session::{Session, handle, session};

//! The tamper-evident audit trail: events hash-chained per organization (and
//! one chain for account events), their reads and the chain check. [`record`] is how
//! every area appends an event; `api` is its HTTP surface, `service` its
//! reads and the chain check, `store` its SQL.

pub mod api;
mod chain;
mod record;
mod service;
mod store;

pub use record::{AuditAction, Entry, Stamped, record};
pub use service::{Verification, chains, verify_chain};
pub use store::append_in;

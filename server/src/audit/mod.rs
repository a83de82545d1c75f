//! The tamper-evident audit trail: events hash-chained per organization (and
//! one chain for account events), their reads and the chain check. `api` is
//! its HTTP surface, `service` its rules, `store` its SQL.

pub mod api;
pub mod service;
pub mod store;

//! Integration tests: one binary, real servers on port 0, a fresh database
//! per test, on SQLite and (when `SWITCHYARD_TEST_POSTGRES_URL` is set) on
//! PostgreSQL.

// clippy's test allowances cover `#[test]` functions; the helpers they call
// fail the same way, by panicking with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code fails by panicking")]

mod abuse;
mod architecture;
mod audit;
mod authz;
mod cli;
mod config;
mod contract;
mod email;
mod envelope;
mod gateway;
mod gateway_fields;
mod gateway_metrics;
mod gateway_usage;
mod hostile_input;
mod housekeeping;
mod identity;
mod invitations;
mod key_usage;
mod members;
mod operations;
mod password_change;
mod projects;
mod published;
mod step_up;
mod support;
mod two_factor;
mod usage;

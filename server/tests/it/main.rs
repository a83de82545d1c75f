//! Integration tests: one binary, real servers on port 0, a fresh database
//! per test, on SQLite and (when `SWITCHYARD_TEST_POSTGRES_URL` is set) on
//! PostgreSQL.

// clippy's test allowances cover `#[test]` functions; the helpers they call
// fail the same way, by panicking with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code fails by panicking")]

mod architecture;
mod audit;
mod authz;
mod cli;
mod config;
mod contract;
mod crash;
mod envelope;
mod gateway;
mod hostile_input;
mod housekeeping;
mod idempotency;
mod identity;
mod operations;
mod outbound;
mod pagination;
mod published;
mod run_approvals;
mod run_events;
mod run_http_tools;
mod run_session_access;
mod run_sessions;
mod run_socket;
mod runs;
mod support;
mod ws_contract;

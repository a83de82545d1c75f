//! Switchyard server library: everything the `switchyard` binary, the tests
//! and the conformance suite start in the same way, through [`App::build`].

pub mod app;
pub mod audit;
pub mod config;
pub mod contract;
pub mod db;
pub mod gateway;
pub mod http;
pub mod idempotency;
pub mod identity;
pub mod kernel;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod ops;
pub mod outbound;
pub mod routes;
pub mod runs;
pub mod state;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use app::{App, AppError};
pub use config::Config;
pub use state::AppState;

/// The server's version, as published in `GET /v1/meta` and the spec.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

//! Gateway usage: one row per metered call (`store`), the reports and
//! summaries built from them (`service`), and `GET /v1/usage` (`api`).

pub mod api;
pub mod service;
mod store;

pub use store::{UsageBucket, UsageFilter, UsageGrouping, UsageRow, UsageSource};

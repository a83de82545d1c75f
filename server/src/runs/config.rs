//! `[runs]`: how runs are leased and resumed.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunsConfig {
    /// How long a server's claim on a run lasts without a heartbeat; a run
    /// whose server stopped is resumed by another once it runs out.
    pub lease_secs: u64,
    /// How often each server looks for runs that no server is driving.
    pub resume_interval_secs: u64,
    /// How long a run waits in `requires_action` for client tool outputs
    /// before it ends in `error` (`run.client_tool_timeout`).
    pub client_tool_timeout_secs: u64,
}

impl Default for RunsConfig {
    fn default() -> Self {
        Self { lease_secs: 30, resume_interval_secs: 5, client_tool_timeout_secs: 3600 }
    }
}

//! Structured logging with `tracing`: JSON lines for machines, pretty output
//! for people. Secrets are never passed to log macros; configuration is only
//! ever logged through its masked form.

use tracing_subscriber::EnvFilter;

use serde::{Deserialize, Serialize};

/// Installs the global subscriber. A second call (as in tests) is a no-op.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// How log lines are written: one JSON object per line, or compact text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

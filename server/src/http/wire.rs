//! Conversions shared by the wire types of every area.

use chrono::{DateTime, Utc};

/// Unix seconds as a timestamp; out-of-range values (never stored) become the epoch.
pub fn timestamp(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

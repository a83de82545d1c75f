//! Conversions shared by the wire types of every area.

use chrono::{DateTime, Utc};

/// Unix seconds as a timestamp. The stores hold only times the server took
/// from its clock; one out of chrono's range is logged and shown as the epoch.
pub fn timestamp(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_else(|| {
        tracing::error!(seconds, "a stored time is out of range");
        DateTime::UNIX_EPOCH
    })
}

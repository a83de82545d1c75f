//! Prefixed, time-sortable ids, and the current time in Unix seconds.

/// A new prefixed, time-sortable id such as `usr_01jd3x…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

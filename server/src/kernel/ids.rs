//! Prefixed, time-sortable ids and random secrets.

use rand::distr::{Alphanumeric, SampleString};

/// A new prefixed, time-sortable id such as `usr_01jd3x…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A random alphanumeric (base62) string of `len` characters, from the
/// thread's cryptographically secure generator.
pub fn random_base62(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

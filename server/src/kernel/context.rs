//! The request context an operation records and reads: where a request came
//! from, and when it was made by the server's clock.

use crate::kernel::clock::Clock;

/// Who is asking, from where, and when, for the audit trail and for every
/// expiry the operation checks.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub ip: Option<String>,
    pub request_id: Option<String>,
    /// The time of the request, in Unix seconds, from the server's [`Clock`].
    pub now: i64,
}

impl RequestContext {
    /// A context with no client, such as a command-line operation's.
    pub fn local(clock: &Clock) -> Self {
        Self { ip: None, request_id: None, now: clock.now() }
    }
}

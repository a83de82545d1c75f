//! The request context an operation records: where a request came from.

/// Who is asking and from where, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

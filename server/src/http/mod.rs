//! Cross-cutting HTTP behaviour, applied to every route in one fixed order
//! (see [`crate::app`]): request ids, the error envelope, logs and metrics,
//! panic capture and the body size limit.

pub mod body_limit;
pub mod envelope;
pub mod observe;
pub mod request_id;

//! Request ids: every response carries `X-Request-Id`. A well-formed incoming
//! id is honoured so callers can correlate; otherwise one is minted. The id is
//! held in a task-local for the request's lifetime so error bodies and log
//! lines can read it without threading it through every function.

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use poem_openapi::registry::MetaHeader;
use poem_openapi::types::Type;

pub const HEADER: &str = "x-request-id";
const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request being served on this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `work` as part of the request `id`: its errors and log lines carry
/// it (a WebSocket connection, for one, outlives its upgrade request).
pub async fn scope<F: Future>(id: String, work: F) -> F::Output {
    CURRENT.scope(id, work).await
}

/// Whether an incoming id is safe to echo back and log.
fn is_acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

pub fn mint() -> String {
    format!("req_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// The spec's description of the header, shared by every response.
pub fn header_meta() -> MetaHeader {
    MetaHeader {
        name: "X-Request-Id".to_owned(),
        description: Some("The id of this request; quote it when reporting a problem.".to_owned()),
        required: true,
        deprecated: false,
        schema: String::schema_ref(),
    }
}

pub struct RequestId;

impl<E: Endpoint> Middleware<E> for RequestId {
    type Output = RequestIdEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RequestIdEndpoint(ep)
    }
}

pub struct RequestIdEndpoint<E>(E);

impl<E: Endpoint> Endpoint for RequestIdEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let id = req
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_acceptable(v))
            .map_or_else(mint, str::to_owned);
        let result = CURRENT.scope(id.clone(), self.0.call(req)).await;
        let mut resp = match result {
            Ok(resp) => resp.into_response(),
            Err(err) => err.into_response(),
        };
        if let Ok(value) = id.parse() {
            resp.headers_mut().insert(HEADER, value);
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids_and_rejects_the_rest() {
        assert!(is_acceptable("req_01hx"));
        assert!(is_acceptable("a1b2-c3.d4:e5"));
        assert!(!is_acceptable(""));
        assert!(!is_acceptable("has space"));
        assert!(!is_acceptable("line\nbreak"));
        assert!(!is_acceptable(&"x".repeat(MAX_LEN + 1)));
    }

    #[test]
    fn minted_ids_are_prefixed_and_unique() {
        let (a, b) = (mint(), mint());
        assert!(a.starts_with("req_") && is_acceptable(&a));
        assert_ne!(a, b);
    }
}

//! The general limit on authenticated requests: every request that presents
//! a credential (`Authorization: Bearer …` or `X-API-Key`) counts against it,
//! before routing and body parsing, and every such response carries
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`. An
//! endpoint with a narrower limit of its own (the gateway's per-key limits,
//! the abuse limits) sets these headers itself and they are kept. Until a
//! credential has authenticated once, its requests count against the
//! client's address (see `limits::credential`).

use std::sync::Arc;
use std::time::Instant;

use poem::http::StatusCode;
use poem::http::header::AUTHORIZATION;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use crate::http::client_addr::ClientAddr;
use crate::http::error::{ApiError, ErrorCode};
use crate::limits::{CredentialLimiter, X_RATELIMIT_LIMIT};

pub struct CredentialLimit(pub Arc<CredentialLimiter>);

impl<E: Endpoint> Middleware<E> for CredentialLimit {
    type Output = CredentialLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        CredentialLimitEndpoint { inner: ep, limiter: self.0.clone() }
    }
}

pub struct CredentialLimitEndpoint<E> {
    inner: E,
    limiter: Arc<CredentialLimiter>,
}

/// The credential a request presents, if any: `Authorization` with the
/// `Bearer` scheme in any case (RFC 9110 makes schemes case-insensitive, and
/// authentication accepts them so), or `X-API-Key`.
fn credential(req: &Request) -> Option<&str> {
    let bearer =
        req.headers().get(AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(bearer_token);
    bearer.or_else(|| req.headers().get("x-api-key").and_then(|value| value.to_str().ok()))
}

/// The token of a `Bearer` authorization value, the scheme in any case.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case("bearer ").then_some(token)
}

impl<E: Endpoint> Endpoint for CredentialLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let Some(credential) = credential(&req).map(str::trim).filter(|c| !c.is_empty()) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let client = ClientAddr::of(&req).ip();
        let (decision, counted) = self.limiter.hit(credential, client, Instant::now());
        if !decision.is_allowed() {
            let mut err = ApiError::rate_limited(ErrorCode::RateLimitExceeded, decision);
            err.why = Some("This credential sent too many requests.".to_owned());
            return Ok(err.into_response());
        }
        let mut response = self.inner.call(req).await.map(IntoResponse::into_response)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            self.limiter.authenticated(counted, Instant::now());
        }
        if !response.headers().contains_key(X_RATELIMIT_LIMIT) {
            decision.write_headers(response.headers_mut());
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        for value in ["Bearer tok", "bearer tok", "BEARER tok", "bEaReR tok"] {
            assert_eq!(bearer_token(value), Some("tok"), "{value}");
        }
        for value in ["Basic dG9r", "Bearer", "Bearertok", "", "Béarer tok"] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }
}

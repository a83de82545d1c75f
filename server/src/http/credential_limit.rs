//! The general limit on authenticated requests: every request that presents
//! a credential (`Authorization: Bearer …` or `X-API-Key`) counts against it,
//! before routing and body parsing, and every such response carries
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`. An
//! endpoint with a narrower limit of its own (the gateway's per-key limits,
//! the abuse limits) sets these headers itself and they are kept.

use std::sync::Arc;
use std::time::Instant;

use poem::http::header::AUTHORIZATION;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use crate::error::{ApiError, ErrorCode};
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

/// The credential a request presents, if any.
fn credential(req: &Request) -> Option<&str> {
    let bearer = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")));
    bearer.or_else(|| req.headers().get("x-api-key").and_then(|value| value.to_str().ok()))
}

impl<E: Endpoint> Endpoint for CredentialLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let Some(credential) = credential(&req).map(str::trim).filter(|c| !c.is_empty()) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let decision = self.limiter.hit(credential, Instant::now());
        if !decision.is_allowed() {
            let mut err = ApiError::rate_limited(ErrorCode::RateLimitExceeded, decision);
            err.why = Some("This credential sent too many requests.".to_owned());
            return Ok(err.into_response());
        }
        let mut response = self.inner.call(req).await.map(IntoResponse::into_response)?;
        if !response.headers().contains_key(X_RATELIMIT_LIMIT) {
            decision.write_headers(response.headers_mut());
        }
        Ok(response)
    }
}

//! Sending through the guard: redirects followed by hand (at most
//! [`MAX_REDIRECTS`]), each hop's URL judged again before it is sent and its
//! host resolved and judged again by the client's resolver; the answer read
//! as a stream and refused past the size limit; everything within one
//! deadline.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use url::Url;

use super::{Outbound, OutboundError};

/// Redirects followed for one request; one more is [`OutboundError::TooManyRedirects`].
pub const MAX_REDIRECTS: usize = 3;

/// A request to send through the guard.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: Method,
    pub url: Url,
    /// Values marked sensitive (`HeaderValue::set_sensitive`) are dropped,
    /// like `Authorization` and `Cookie`, when a redirect leaves the origin.
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// Instead of `[outbound] timeout_ms`, for the whole request.
    pub timeout: Option<Duration>,
    /// A lower limit than `[outbound] max_response_bytes` on the answer.
    pub max_response_bytes: Option<u64>,
}

impl OutboundRequest {
    pub fn new(method: Method, url: Url) -> Self {
        Self { method, url, headers: HeaderMap::new(), body: None, timeout: None, max_response_bytes: None }
    }
}

/// The answer at the end of the redirects, read whole.
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The URL that answered, after redirects.
    pub final_url: Url,
}

impl Outbound {
    /// Sends `request`, following redirects, and reads the answer whole.
    pub async fn send(&self, request: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        let timeout = request.timeout.unwrap_or(self.inner.timeout);
        let limit = request
            .max_response_bytes
            .map_or(self.inner.max_response_bytes, |own| own.min(self.inner.max_response_bytes));
        let after_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        tokio::time::timeout(timeout, self.follow(request, limit))
            .await
            .unwrap_or(Err(OutboundError::Timeout { after_ms }))
    }

    async fn follow(
        &self,
        mut request: OutboundRequest,
        limit: u64,
    ) -> Result<OutboundResponse, OutboundError> {
        let mut redirects = 0;
        loop {
            self.inner.policy.target(&request.url)?;
            let mut builder = self
                .inner
                .client
                .request(request.method.clone(), request.url.clone())
                .headers(request.headers.clone());
            if let Some(body) = &request.body {
                builder = builder.body(body.clone());
            }
            let response = builder.send().await.map_err(OutboundError::from_reqwest)?;
            if let Some(next) = redirect_location(&response, &request.url)? {
                if redirects == MAX_REDIRECTS {
                    return Err(OutboundError::TooManyRedirects { max: MAX_REDIRECTS });
                }
                redirects += 1;
                request = redirected(request, response.status(), next);
                continue;
            }
            let status = response.status();
            let headers = response.headers().clone();
            let body = read_within(response, limit).await?;
            return Ok(OutboundResponse { status, headers, body, final_url: request.url });
        }
    }
}

/// Where a redirect answer points, or `None` for any other answer (a
/// redirect status without `Location` is an answer like another).
fn redirect_location(response: &reqwest::Response, current: &Url) -> Result<Option<Url>, OutboundError> {
    let redirects = matches!(
        response.status(),
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    );
    let Some(location) = response.headers().get(header::LOCATION).filter(|_| redirects) else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(location.as_bytes());
    current.join(&text).map(Some).map_err(|_| OutboundError::BadRedirect { location: text.into_owned() })
}

/// The request the next hop sends: 303, and 301/302 after a POST, become a
/// GET without a body (as browsers do); 307 and 308 repeat the request. A
/// hop to another origin drops the credentials meant for this one.
fn redirected(mut request: OutboundRequest, status: StatusCode, next: Url) -> OutboundRequest {
    let becomes_get = status == StatusCode::SEE_OTHER && request.method != Method::HEAD
        || matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
            && request.method == Method::POST;
    if becomes_get {
        request.method = Method::GET;
        request.body = None;
        for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::CONTENT_ENCODING] {
            request.headers.remove(name);
        }
    }
    if next.origin() != request.url.origin() {
        for name in
            [header::AUTHORIZATION, header::COOKIE, header::PROXY_AUTHORIZATION, header::WWW_AUTHENTICATE]
        {
            request.headers.remove(name);
        }
        let secret: Vec<_> = request
            .headers
            .iter()
            .filter(|(_, value)| value.is_sensitive())
            .map(|(name, _)| name.clone())
            .collect();
        for name in secret {
            request.headers.remove(name);
        }
    }
    request.url = next;
    request
}

/// The body, read chunk by chunk and refused as soon as it passes `limit`.
async fn read_within(mut response: reqwest::Response, limit: u64) -> Result<Bytes, OutboundError> {
    if response.content_length().is_some_and(|length| length > limit) {
        return Err(OutboundError::TooLarge { limit });
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(OutboundError::from_reqwest)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(OutboundError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn request(method: Method, url: &str) -> OutboundRequest {
        let mut request = OutboundRequest::new(method, Url::parse(url).unwrap());
        request.headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        request.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut secret = HeaderValue::from_static("s3cret");
        secret.set_sensitive(true);
        request.headers.insert("x-api-key", secret);
        request.headers.insert("idempotency-key", HeaderValue::from_static("run_1:call_1"));
        request.body = Some(Bytes::from_static(b"{}"));
        request
    }

    #[test]
    fn see_other_and_moved_posts_become_gets_without_a_body() {
        for status in [StatusCode::SEE_OTHER, StatusCode::FOUND, StatusCode::MOVED_PERMANENTLY] {
            let next = redirected(
                request(Method::POST, "https://a.test/x"),
                status,
                Url::parse("https://a.test/y").unwrap(),
            );
            assert_eq!(next.method, Method::GET, "{status}");
            assert_eq!(next.body, None, "{status}");
            assert!(next.headers.get(header::CONTENT_TYPE).is_none(), "{status}");
            assert!(next.headers.get(header::AUTHORIZATION).is_some(), "same origin keeps credentials");
        }
        for status in [StatusCode::TEMPORARY_REDIRECT, StatusCode::PERMANENT_REDIRECT] {
            let next = redirected(
                request(Method::POST, "https://a.test/x"),
                status,
                Url::parse("https://a.test/y").unwrap(),
            );
            assert_eq!(next.method, Method::POST, "{status}");
            assert!(next.body.is_some(), "{status}");
        }
    }

    #[test]
    fn leaving_the_origin_drops_credentials_and_sensitive_headers() {
        let next = redirected(
            request(Method::POST, "https://a.test/x"),
            StatusCode::TEMPORARY_REDIRECT,
            Url::parse("https://b.test/y").unwrap(),
        );
        assert!(next.headers.get(header::AUTHORIZATION).is_none());
        assert!(next.headers.get("x-api-key").is_none());
        assert_eq!(next.headers.get("idempotency-key").unwrap(), "run_1:call_1");
        assert_eq!(next.url.as_str(), "https://b.test/y");
    }
}

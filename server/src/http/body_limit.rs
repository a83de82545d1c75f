//! Caps request bodies on the bytes actually read, not only on the declared
//! `Content-Length`: a chunked or lying client is cut off at the limit with a
//! 413 before any handler sees the body.

use poem::error::ReadBodyError;
use poem::http::{StatusCode, header};
use poem::{Body, Endpoint, Middleware, Request, Result};

pub struct BodyLimit {
    max_bytes: usize,
}

impl BodyLimit {
    pub fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint { inner: ep, max_bytes: self.max_bytes }
    }
}

pub struct BodyLimitEndpoint<E> {
    inner: E,
    max_bytes: usize,
}

fn too_large() -> poem::Error {
    poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE)
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.max_bytes as u64) {
            return Err(too_large());
        }
        let body = req.take_body();
        let bytes = body.into_bytes_limit(self.max_bytes).await.map_err(|err| match err {
            ReadBodyError::PayloadTooLarge => too_large(),
            other => poem::Error::new(other, StatusCode::BAD_REQUEST),
        })?;
        req.set_body(Body::from(bytes));
        self.inner.call(req).await
    }
}

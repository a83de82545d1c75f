//! Guarantees that every error leaves the server in the one `ErrorBody`
//! envelope: poem's own routing, extraction and body errors, our operation
//! errors (already enveloped, passed through) and panics. A 405 also names
//! the path's methods in `Allow`.

use std::sync::Arc;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use crate::http::allow::AllowedMethods;
use crate::http::error::{ApiError, Enveloped, ErrorCode};

pub struct Envelope(pub Arc<AllowedMethods>);

impl<E: Endpoint> Middleware<E> for Envelope {
    type Output = EnvelopeEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        EnvelopeEndpoint { inner: ep, allowed: self.0.clone() }
    }
}

pub struct EnvelopeEndpoint<E> {
    inner: E,
    allowed: Arc<AllowedMethods>,
}

impl<E: Endpoint> Endpoint for EnvelopeEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        // A cheap clone (the path is reference-counted): the request is gone
        // by the time a 405 needs its path.
        let uri = req.uri().clone();
        match self.inner.call(req).await {
            Ok(resp) => Ok(resp.into_response()),
            Err(err) => {
                let mut resp = wrap_error(err);
                if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
                    let allow = self.allowed.for_path(uri.path()).and_then(|a| HeaderValue::from_str(a).ok());
                    if let Some(allow) = allow {
                        resp.headers_mut().insert(header::ALLOW, allow);
                    }
                }
                Ok(resp)
            }
        }
    }
}

fn wrap_error(err: poem::Error) -> Response {
    let operation = err.data::<poem_openapi::OperationId>().copied();
    let status = err.status();
    let message = err.to_string();
    let mut resp = err.into_response();
    if resp.data::<Enveloped>().is_none() {
        if status.is_server_error() {
            tracing::error!(%status, error = %message, "request failed");
        }
        resp = from_status(status, &message).into_response();
    }
    if let Some(operation) = operation {
        resp.set_data(operation);
    }
    resp
}

/// Maps a status and poem's message to an error with a useful why/fix.
fn from_status(status: StatusCode, message: &str) -> ApiError {
    let code = ErrorCode::for_status(status);
    match code {
        ErrorCode::RequestNotFound => ApiError::new(code, "No such endpoint")
            .why("No route matches this path.")
            .fix("Check the path against /openapi.json; every endpoint lives under /v1."),
        ErrorCode::RequestMethodNotAllowed => ApiError::new(code, "Method not allowed for this path")
            .fix("Check the method against /openapi.json."),
        ErrorCode::RequestTooLarge => ApiError::new(code, "Request body too large")
            .why("The body is larger than this endpoint accepts.")
            .fix("Send a smaller body."),
        ErrorCode::RequestUnsupportedMediaType => ApiError::new(code, "Unsupported media type")
            .why(message.to_owned())
            .fix("Send the body as application/json."),
        ErrorCode::AuthMissingCredentials => ApiError::new(code, "Authentication required")
            .why("This endpoint needs a credential and none was sent.")
            .fix("Send `Authorization: Bearer <session token or API key>` or `X-API-Key: <API key>`."),
        ErrorCode::RequestLengthRequired => {
            ApiError::new(code, "Content-Length required").fix("Send a Content-Length header with the body.")
        }
        ErrorCode::ServerInternal => ApiError::new(code, "Internal server error")
            .why("The server hit an unexpected condition; it has been logged.")
            .fix("Retry later; if it persists, report the request id."),
        _ => ApiError::new(code, message_or_default(message, status)),
    }
}

fn message_or_default(message: &str, status: StatusCode) -> String {
    if message.is_empty() {
        status.canonical_reason().unwrap_or("Bad request").to_owned()
    } else {
        message.to_owned()
    }
}

/// Turns a caught panic into a logged 500 in the envelope.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %detail, "handler panicked");
    from_status(StatusCode::INTERNAL_SERVER_ERROR, "").into_response()
}

//! The answer of a gateway call: a whole JSON body or an event stream, with
//! the documented headers (`Server-Timing`, the request id, rate limits).

use std::io;
use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use poem::http::HeaderValue;
use poem::{Body, IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;
use switchyard_providers::wire::{ChatCompletion, ChatCompletionStreamEvent, EmbeddingList};

use crate::gateway::metering::Quota;
use crate::http::request_id;

/// `Server-Timing`: time spent waiting on the provider, and the gateway's own.
#[derive(Debug, Clone, Copy)]
pub(super) struct ServerTiming {
    pub(super) upstream: Duration,
    pub(super) total: Duration,
}

impl ServerTiming {
    fn header(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "upstream;dur={:.3}, gateway;dur={:.3}",
            ms(self.upstream),
            ms(self.total.saturating_sub(self.upstream))
        )
    }
}

/// A gateway answer of type `T`: its JSON bytes, or for chat an event
/// stream, with the rate-limit and timing headers.
pub struct GatewayReply<T> {
    body: Body,
    content_type: &'static str,
    quota: Quota,
    timing: ServerTiming,
    answer: PhantomData<fn() -> T>,
}

/// The media types a gateway answer is documented with.
pub trait ReplyContent: Type {
    fn media_types() -> Vec<MetaMediaType> {
        vec![MetaMediaType { content_type: "application/json", schema: Self::schema_ref() }]
    }
}

impl ReplyContent for EmbeddingList {}

impl ReplyContent for ChatCompletion {
    fn media_types() -> Vec<MetaMediaType> {
        vec![
            MetaMediaType { content_type: "application/json", schema: Self::schema_ref() },
            MetaMediaType {
                content_type: "text/event-stream",
                schema: ChatCompletionStreamEvent::schema_ref(),
            },
        ]
    }
}

impl<T> GatewayReply<T> {
    pub(super) fn json(body: Bytes, quota: Quota, timing: ServerTiming) -> Self {
        Self {
            body: Body::from_bytes(body),
            content_type: "application/json",
            quota,
            timing,
            answer: PhantomData,
        }
    }

    pub(super) fn stream(
        frames: impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
        quota: Quota,
        timing: ServerTiming,
    ) -> Self {
        Self {
            body: Body::from_bytes_stream(frames),
            content_type: "text/event-stream",
            quota,
            timing,
            answer: PhantomData,
        }
    }
}

impl<T: Send> IntoResponse for GatewayReply<T> {
    fn into_response(self) -> Response {
        let mut response = Response::builder().content_type(self.content_type).body(self.body);
        let headers = response.headers_mut();
        if self.content_type == "text/event-stream" {
            headers.insert("cache-control", HeaderValue::from_static("no-cache"));
        }
        if let Ok(timing) = HeaderValue::from_str(&self.timing.header()) {
            headers.insert("server-timing", timing);
        }
        let mut put = |name: &'static str, value: u64| {
            headers.insert(name, HeaderValue::from(value));
        };
        if let Some((limit, remaining)) = self.quota.requests {
            put("x-ratelimit-limit", u64::from(limit));
            put("x-ratelimit-remaining", u64::from(remaining));
            put("x-ratelimit-reset", self.quota.reset_secs);
            put("x-ratelimit-limit-requests", u64::from(limit));
            put("x-ratelimit-remaining-requests", u64::from(remaining));
        }
        if let Some((limit, remaining)) = self.quota.tokens {
            put("x-ratelimit-limit-tokens", u64::from(limit));
            put("x-ratelimit-remaining-tokens", u64::from(remaining));
        }
        // OpenAI writes resets as durations; both limits share one window.
        if self.quota.requests.is_some() || self.quota.tokens.is_some() {
            let reset = HeaderValue::try_from(format!("{}s", self.quota.reset_secs));
            for (limited, name) in [
                (self.quota.requests.is_some(), "x-ratelimit-reset-requests"),
                (self.quota.tokens.is_some(), "x-ratelimit-reset-tokens"),
            ] {
                if let (true, Ok(reset)) = (limited, &reset) {
                    headers.insert(name, reset.clone());
                }
            }
        }
        response
    }
}

pub(super) fn header(name: &str, description: &str, required: bool, schema: MetaSchemaRef) -> MetaHeader {
    MetaHeader {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        required,
        deprecated: false,
        schema,
    }
}

impl<T: ReplyContent + Send> ApiResponse for GatewayReply<T> {
    fn meta() -> MetaResponses {
        let count = || u64::schema_ref();
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The answer; for chat, server-sent events when `stream` is true.",
                status: Some(200),
                status_range: None,
                content: T::media_types(),
                headers: vec![
                    request_id::header_meta(),
                    header(
                        "Server-Timing",
                        "Time spent upstream and in the gateway, in ms.",
                        true,
                        String::schema_ref(),
                    ),
                    header(
                        "X-RateLimit-Limit",
                        "The key's requests per minute, when it has a limit.",
                        false,
                        count(),
                    ),
                    header("X-RateLimit-Remaining", "Requests left in the current minute.", false, count()),
                    header("X-RateLimit-Reset", "Seconds until the window has room again.", false, count()),
                    header(
                        "x-ratelimit-limit-requests",
                        "OpenAI's name for X-RateLimit-Limit.",
                        false,
                        count(),
                    ),
                    header(
                        "x-ratelimit-remaining-requests",
                        "OpenAI's name for X-RateLimit-Remaining.",
                        false,
                        count(),
                    ),
                    header(
                        "x-ratelimit-limit-tokens",
                        "The key's tokens per minute, when it has a limit.",
                        false,
                        count(),
                    ),
                    header(
                        "x-ratelimit-remaining-tokens",
                        "Tokens left in the current minute.",
                        false,
                        count(),
                    ),
                    header(
                        "x-ratelimit-reset-requests",
                        "OpenAI's form of X-RateLimit-Reset, as a duration such as `12s`.",
                        false,
                        String::schema_ref(),
                    ),
                    header(
                        "x-ratelimit-reset-tokens",
                        "When the token window has room again, as a duration such as `12s`.",
                        false,
                        String::schema_ref(),
                    ),
                ],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
        ChatCompletionStreamEvent::register(registry);
    }
}

//! Anthropic's Messages API as a provider. This module owns the call: the
//! request goes to `POST /v1/messages` with the API version and the key, and
//! only the fields the operator lets through join it. The translation both
//! ways is the submodules': `request` makes a Messages request of an OpenAI
//! chat request, `response` a `chat.completion` of a whole message, and
//! `stream` `chat.completion.chunk`s of its stream of events. HTTP, timeouts
//! and SSE parsing are `upstream`'s.
//!
//! Only fields Anthropic has a counterpart for are sent (`user` goes as
//! `metadata.user_id`); what it cannot do — several choices, tool arguments
//! that are not a JSON object, audio or file parts — is refused with a 400
//! rather than dropped. Empty tool arguments mean `{}`, both ways.

mod request;
mod response;
mod stream;

use bytes::Bytes;
use tokio::time::Instant;

use crate::anthropic::request::messages_request;
use crate::anthropic::response::{MessagesResponse, chat_completion};
use crate::anthropic::stream::chunk_events;
use crate::fields;
use crate::upstream;
use crate::upstream::UpstreamError;
use crate::wire::ChatCompletionRequest;
use crate::{Reply, Timeouts};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com/v1";

/// The Messages API version this translation follows.
const API_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    client: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    /// Request fields the operator lets through, sent as top-level fields
    /// of the Messages request (`top_k`, `thinking`, …).
    pass_through: Vec<String>,
}

impl Anthropic {
    pub fn new(client: reqwest::Client, base_url: String, api_key: Option<String>) -> Self {
        Self { client, base_url, api_key, pass_through: Vec::new() }
    }

    /// Lets `fields` through to this provider (`pass_through` in its configuration).
    pub fn with_pass_through(self, fields: Vec<String>) -> Self {
        Self { pass_through: fields, ..self }
    }

    pub fn pass_through(&self) -> &[String] {
        &self.pass_through
    }

    pub async fn chat(
        &self,
        request: &ChatCompletionRequest,
        model: &str,
        timeouts: &Timeouts,
        deadline: Instant,
    ) -> Result<Reply, UpstreamError> {
        let mut outgoing = messages_request(request, model)?;
        outgoing.extra = fields::allowed(&request.extra, &[], &self.pass_through);
        let body = serde_json::to_vec(&outgoing).map_err(protocol)?;
        let response = upstream::send(self.post_messages(body), timeouts).await?;
        let created = chrono::Utc::now().timestamp();
        if request.is_stream() {
            let events = upstream::sse_events(response, timeouts, deadline);
            return Ok(Reply::Stream(chunk_events(events, created)));
        }
        let body = upstream::body(response, timeouts).await?;
        let message: MessagesResponse = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Protocol(format!("not a Messages API answer: {e}")))?;
        let completion = chat_completion(message, created);
        let usage = completion.usage;
        let body = serde_json::to_vec(&completion).map_err(protocol)?;
        Ok(Reply::Complete { body: Bytes::from(body), usage })
    }

    fn post_messages(&self, body: Vec<u8>) -> reqwest::RequestBuilder {
        let request = self
            .client
            .post(format!("{}/messages", self.base_url))
            .header("anthropic-version", API_VERSION)
            .header("content-type", "application/json")
            .body(body);
        match &self.api_key {
            Some(key) => request.header("x-api-key", key),
            None => request,
        }
    }
}

fn protocol(err: serde_json::Error) -> UpstreamError {
    UpstreamError::Protocol(err.to_string())
}

/// What the tests of every part share: Anthropic's recorded answers
/// (`fixtures/`) and readers of the chunks they come to.
#[cfg(test)]
mod testing {
    use serde_json::{Value, json};

    use crate::ChunkEvent;
    use crate::wire::ChatCompletionRequest;

    /// Recorded answers of the Messages API, as Anthropic sends them.
    pub const MESSAGE_TEXT: &str = include_str!("fixtures/message_text.json");
    pub const MESSAGE_TOOL_USE: &str = include_str!("fixtures/message_tool_use.json");
    pub const STREAM_TEXT: &str = include_str!("fixtures/stream_text.txt");
    pub const STREAM_TOOL_USE: &str = include_str!("fixtures/stream_tool_use.txt");
    pub const STREAM_ERROR: &str = include_str!("fixtures/stream_error.txt");

    pub const CREATED: i64 = 1_700_000_000;
    pub const MODEL: &str = "claude-sonnet-4-5-20250929";

    pub fn request(value: Value) -> ChatCompletionRequest {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn json_of(event: &ChunkEvent) -> Value {
        serde_json::from_slice(&event.data).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn choices(events: &[ChunkEvent]) -> Vec<Value> {
        events.iter().map(|event| json_of(event)["choices"].clone()).collect()
    }

    pub fn finish(reason: &str) -> Value {
        json!([{"index": 0, "delta": {}, "finish_reason": reason}])
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use poem::http::StatusCode;
    use serde_json::{Value, json};
    use tokio::sync::mpsc;

    use super::*;
    use crate::ChunkEvent;
    use crate::anthropic::request::DEFAULT_MAX_TOKENS;
    use crate::anthropic::testing::{MESSAGE_TEXT, MODEL, STREAM_TEXT, choices, finish, request};
    use crate::wire::Usage;

    const KEY: &str = "sk-ant-test-key";

    /// A stand-in for api.anthropic.com on a free local port, answering
    /// `answer` to requests with the right headers, and handing each
    /// request's body to the test.
    async fn fake_anthropic(
        answer: &'static str,
        content_type: &'static str,
    ) -> std::io::Result<(String, mpsc::UnboundedReceiver<Value>)> {
        let (sender, bodies) = mpsc::unbounded_channel();
        let messages = poem::endpoint::make(move |request: poem::Request| {
            let sender = sender.clone();
            async move {
                if request.header("x-api-key") != Some(KEY) {
                    return Ok(anthropic_error(
                        StatusCode::UNAUTHORIZED,
                        "authentication_error",
                        "invalid x-api-key",
                    ));
                }
                if request.header("anthropic-version") != Some("2023-06-01")
                    || request.content_type() != Some("application/json")
                {
                    return Ok(anthropic_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_request_error",
                        "bad headers",
                    ));
                }
                let body: Value = request.into_body().into_json().await?;
                let _ = sender.send(body);
                Ok::<_, poem::Error>(poem::Response::builder().content_type(content_type).body(answer))
            }
        });
        let app = poem::Route::new().at("/v1/messages", poem::post(messages));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener)?;
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        Ok((format!("http://{address}/v1"), bodies))
    }

    fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> poem::Response {
        let body = json!({"type": "error", "error": {"type": kind, "message": message}});
        poem::Response::builder().status(status).content_type("application/json").body(body.to_string())
    }

    fn timeouts() -> Timeouts {
        let second = Duration::from_secs(1);
        Timeouts {
            connect: second,
            first_byte: 5 * second,
            idle: 5 * second,
            total: 10 * second,
            backoff: second,
            keepalive: second,
        }
    }

    async fn call(base_url: String, key: &str, stream: bool) -> Result<Reply, UpstreamError> {
        let anthropic = Anthropic::new(reqwest::Client::new(), base_url, Some(key.to_owned()));
        let request = request(json!({
            "model": "claude",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello"},
            ],
            "stream": stream,
        }));
        anthropic.chat(&request, MODEL, &timeouts(), Instant::now() + timeouts().total).await
    }

    fn expected_body(stream: bool) -> Value {
        let mut body = json!({
            "model": MODEL,
            "max_tokens": DEFAULT_MAX_TOKENS,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        });
        if let (Some(object), true) = (body.as_object_mut(), stream) {
            object.insert("stream".to_owned(), Value::Bool(true));
        }
        body
    }

    #[tokio::test]
    async fn streams_from_a_messages_api_server() -> Result<(), Box<dyn std::error::Error>> {
        let (base_url, mut bodies) = fake_anthropic(STREAM_TEXT, "text/event-stream").await?;
        let Reply::Stream(events) = call(base_url, KEY, true).await? else { panic!("expected a stream") };
        let events: Vec<ChunkEvent> =
            events.collect::<Vec<_>>().await.into_iter().collect::<Result<_, _>>()?;
        assert_eq!(bodies.recv().await, Some(expected_body(true)));

        let text: String = choices(&events)
            .iter()
            .filter_map(|c| c[0]["delta"]["content"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(text, "Hello! How can I help you today?");
        assert_eq!(choices(&events)[events.len() - 2], finish("stop"));
        let last = events.last().ok_or("no events")?;
        assert!(last.usage_only);
        assert_eq!(last.usage, Some(Usage::new(21, 12)));
        Ok(())
    }

    #[tokio::test]
    async fn completes_from_a_messages_api_server() -> Result<(), Box<dyn std::error::Error>> {
        let (base_url, mut bodies) = fake_anthropic(MESSAGE_TEXT, "application/json").await?;
        let Reply::Complete { body, usage } = call(base_url, KEY, false).await? else {
            panic!("expected a whole answer")
        };
        assert_eq!(bodies.recv().await, Some(expected_body(false)));
        assert_eq!(usage, Some(Usage::new(2062, 10)));
        let completion: Value = serde_json::from_slice(&body)?;
        assert_eq!(completion["object"], "chat.completion");
        assert_eq!(completion["id"], "msg_01XFDUDYJgAACzvnptvVoYEL");
        assert_eq!(completion["choices"][0]["message"]["content"], "The capital of France is Paris.");
        Ok(())
    }

    #[tokio::test]
    async fn a_wrong_key_is_the_providers_refusal() -> Result<(), Box<dyn std::error::Error>> {
        let (base_url, _bodies) = fake_anthropic(MESSAGE_TEXT, "application/json").await?;
        match call(base_url, "sk-ant-wrong", false).await {
            Err(UpstreamError::Status { status: 401, message }) => assert_eq!(message, "invalid x-api-key"),
            Err(other) => panic!("expected a 401, got {other}"),
            Ok(_) => panic!("expected a 401, got an answer"),
        }
        Ok(())
    }
}

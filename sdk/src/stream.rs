//! Server-sent event streams (chat completion chunks, run events, knowledge
//! answers): [`events`] turns a streaming response into a stream of
//! [`SseEvent`]s, following the WHATWG event-stream parsing rules, and
//! [`chat_completion_stream`] streams a chat completion as typed chunks
//! (the generated `chat_completion_create` reads whole JSON answers only).

use futures::{Stream, StreamExt, stream};

use crate::types::{ChatCompletionChunk, ChatCompletionRequest, ErrorBody};
use crate::{Client, ClientInfo, Error, ResponseValue};

/// What can end a chat completion stream early.
#[derive(Debug, thiserror::Error)]
pub enum ChatStreamError {
    #[error("reading the stream: {0}")]
    Http(#[from] reqwest::Error),
    #[error("a chunk is not a chat.completion.chunk: {0}")]
    Chunk(#[from] serde_json::Error),
    /// The provider failed after the stream began; the server sends the
    /// error envelope as the last event.
    #[error("the stream ended with an error: {}", .0.error.message)]
    Upstream(Box<ErrorBody>),
}

/// Sends `request` with `stream: true` and yields its chunks as they arrive,
/// ending at `data: [DONE]`. Refusals before the stream starts (401, 404,
/// 429, …) come back as [`Error::ErrorResponse`], as from any operation.
pub async fn chat_completion_stream(
    client: &Client,
    request: &ChatCompletionRequest,
) -> Result<impl Stream<Item = Result<ChatCompletionChunk, ChatStreamError>> + use<>, Error<ErrorBody>> {
    let mut body = serde_json::to_value(request).map_err(|e| Error::InvalidRequest(e.to_string()))?;
    body["stream"] = serde_json::Value::Bool(true);
    let response = client
        .client()
        .post(format!("{}/v1/chat/completions", client.baseurl()))
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .json(&body)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(Error::ErrorResponse(ResponseValue::from_response(response).await?));
    }
    Ok(events(response)
        .take_while(|event| std::future::ready(!matches!(event, Ok(event) if event.data == "[DONE]")))
        .map(|event| {
            let data = event?.data;
            match serde_json::from_str::<ErrorBody>(&data) {
                Ok(failure) => Err(ChatStreamError::Upstream(Box::new(failure))),
                Err(_) => Ok(serde_json::from_str::<ChatCompletionChunk>(&data)?),
            }
        }))
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; `None` means the default `message` type.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The `id:` field, to resume with `Last-Event-ID`.
    pub id: Option<String>,
    /// The `retry:` field, in milliseconds.
    pub retry: Option<u64>,
}

/// Incremental parser: feed bytes as they arrive, collect complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    pending: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Consumes `bytes` and returns every event they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(event) = self.line(&String::from_utf8_lossy(&line)) {
                events.push(event);
            }
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.pending);
            return std::mem::take(&mut self.has_data).then_some(event);
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.pending.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.pending.data.push('\n');
                }
                self.pending.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.pending.id = Some(value.to_owned()),
            "retry" => self.pending.retry = value.parse().ok().or(self.pending.retry),
            _ => {}
        }
        None
    }
}

/// The events of a `text/event-stream` response, as they arrive.
pub fn events(response: reqwest::Response) -> impl Stream<Item = Result<SseEvent, reqwest::Error>> {
    let mut parser = SseParser::default();
    response.bytes_stream().flat_map(move |chunk| {
        let items: Vec<Result<SseEvent, reqwest::Error>> = match chunk {
            Ok(bytes) => parser.push(&bytes).into_iter().map(Ok).collect(),
            Err(err) => vec![Err(err)],
        };
        stream::iter(items)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_split_across_chunks() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"event: delta\ndata: {\"a\"").is_empty());
        let events = parser.push(b":1}\r\nid: 7\n\ndata: [DONE]\n\n");
        assert_eq!(
            events,
            vec![
                SseEvent {
                    event: Some("delta".into()),
                    data: "{\"a\":1}".into(),
                    id: Some("7".into()),
                    retry: None
                },
                SseEvent { data: "[DONE]".into(), ..SseEvent::default() },
            ]
        );
    }

    #[test]
    fn joins_multi_line_data_and_skips_comments() {
        let mut parser = SseParser::default();
        let events = parser.push(b": keep-alive\n\ndata: one\ndata: two\nretry: 1500\n\n");
        assert_eq!(
            events,
            vec![SseEvent { data: "one\ntwo".into(), retry: Some(1500), ..SseEvent::default() }]
        );
    }
}

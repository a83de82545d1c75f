//! Talking HTTP to providers: one request with the gateway's timeouts, error
//! statuses read into [`UpstreamError`], and server-sent events split out of
//! a streamed body as they arrive.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::time::Instant;

use crate::Timeouts;

/// Why a provider did not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not reach the provider: {0}")]
    Connect(String),
    #[error("the provider did not answer in time ({0})")]
    Timeout(&'static str),
    #[error("the provider answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the provider's answer could not be read: {0}")]
    Protocol(String),
    #[error("{0}")]
    Unsupported(&'static str),
}

impl UpstreamError {
    /// Worth trying the next target: the provider may be down or busy, not
    /// the request at fault.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Timeout(_) | Self::Protocol(_) => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Unsupported(_) => false,
        }
    }
}

/// Sends `request` and waits for the response head, within the first-byte
/// timeout. A non-2xx status becomes [`UpstreamError::Status`] with the
/// provider's own message.
pub async fn send(
    request: reqwest::RequestBuilder,
    timeouts: &Timeouts,
) -> Result<reqwest::Response, UpstreamError> {
    let response = tokio::time::timeout(timeouts.first_byte, request.send())
        .await
        .map_err(|_| UpstreamError::Timeout("first byte"))?
        .map_err(|err| {
            if err.is_timeout() {
                UpstreamError::Timeout("connect")
            } else {
                UpstreamError::Connect(without_url(&err))
            }
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = tokio::time::timeout(timeouts.idle, response.bytes()).await.ok().and_then(Result::ok);
    Err(UpstreamError::Status { status: status.as_u16(), message: error_message(body.as_deref()) })
}

/// Reads a whole (non-streamed) body, each read within the idle timeout.
pub async fn body(response: reqwest::Response, timeouts: &Timeouts) -> Result<Bytes, UpstreamError> {
    let mut stream = response.bytes_stream();
    let mut body = BytesMut::new();
    loop {
        match tokio::time::timeout(timeouts.idle, stream.next()).await {
            Err(_) => return Err(UpstreamError::Timeout("idle")),
            Ok(None) => return Ok(body.freeze()),
            Ok(Some(Ok(bytes))) => body.extend_from_slice(&bytes),
            Ok(Some(Err(err))) => return Err(UpstreamError::Protocol(without_url(&err))),
        }
    }
}

/// The message of an OpenAI- or Anthropic-style error body
/// (`{"error": {"message": …}}`), or the body itself, shortened.
fn error_message(body: Option<&[u8]>) -> String {
    let Some(body) = body else { return "no error body".to_owned() };
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let message = parsed.as_ref().and_then(|value| {
        value.pointer("/error/message").or_else(|| value.get("message")).and_then(|m| m.as_str())
    });
    let message = match message {
        Some(message) => message.to_owned(),
        None => String::from_utf8_lossy(body).chars().take(500).collect(),
    };
    without_secrets(&message)
}

/// `text` with every word that could be a credential replaced by
/// `[redacted]`: providers quote the key they were sent ("Incorrect API key
/// provided: sk-proj-…"), and their messages reach clients.
fn without_secrets(text: &str) -> String {
    let looks_secret = |word: &str| {
        let word = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        let lower = word.to_ascii_lowercase();
        let prefixed =
            ["sk-", "sk_", "pk-", "rk-", "key-", "sy_live_", "xai-", "gsk_", "hf_", "ghp_", "aiza"]
                .iter()
                .any(|prefix| lower.starts_with(prefix) && word.len() > prefix.len() + 3);
        // A run of 20 letters and digits, both, is a token, not a name
        // (`claude-sonnet-4-5-20250929` has none).
        let long_token = word.split(|c: char| !c.is_ascii_alphanumeric()).any(|run| {
            run.len() >= 20
                && run.chars().any(|c| c.is_ascii_digit())
                && run.chars().any(|c| c.is_ascii_alphabetic())
        });
        prefixed || long_token
    };
    text.split(' ')
        .map(|word| if looks_secret(word) { "[redacted]" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A reqwest error's text without the URL, which may carry a key in its query.
fn without_url(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text.replace(url.as_str(), "<provider>");
    }
    text
}

/// One server-sent event: its `event:` name, if any, and its `data:` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: Bytes,
}

/// The events of a streamed body as they arrive. Each read must come within
/// the idle timeout, and the whole stream ends by `deadline`.
pub fn sse_events(
    response: reqwest::Response,
    timeouts: &Timeouts,
    deadline: Instant,
) -> BoxStream<'static, Result<SseEvent, UpstreamError>> {
    let idle = timeouts.idle;
    let bytes =
        response.bytes_stream().map(|item| item.map_err(|err| UpstreamError::Protocol(without_url(&err))));
    sse_from_bytes(with_timeouts(bytes, idle, deadline)).boxed()
}

/// Fails the stream when a read takes longer than `idle` or runs past `deadline`.
fn with_timeouts<S>(
    inner: S,
    idle: Duration,
    deadline: Instant,
) -> impl Stream<Item = Result<Bytes, UpstreamError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, UpstreamError>> + Send + 'static,
{
    futures::stream::unfold((Box::pin(inner), false), move |(mut inner, done)| async move {
        if done {
            return None;
        }
        let limit = (Instant::now() + idle).min(deadline);
        match tokio::time::timeout_at(limit, inner.next()).await {
            Ok(Some(item)) => Some((item, (inner, false))),
            Ok(None) => None,
            Err(_) => {
                let phase = if Instant::now() >= deadline { "total" } else { "idle" };
                Some((Err(UpstreamError::Timeout(phase)), (inner, true)))
            }
        }
    })
}

/// Splits a byte stream into server-sent events (`\n\n`-separated blocks of
/// `field: value` lines; `\r\n` accepted).
pub fn sse_from_bytes<S>(bytes: S) -> impl Stream<Item = Result<SseEvent, UpstreamError>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, UpstreamError>> + Send + 'static,
{
    futures::stream::unfold(
        (Box::pin(bytes), BytesMut::new(), false),
        |(mut bytes, mut buffer, mut ended)| async move {
            loop {
                if let Some(event) = next_event(&mut buffer, ended) {
                    return Some((Ok(event), (bytes, buffer, ended)));
                }
                if ended {
                    return None;
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                    Some(Err(err)) => return Some((Err(err), (bytes, BytesMut::new(), true))),
                    None => ended = true,
                }
            }
        },
    )
}

/// Takes the next complete event out of `buffer`; at the end of the body a
/// last unterminated block counts too.
fn next_event(buffer: &mut BytesMut, ended: bool) -> Option<SseEvent> {
    loop {
        let block = match find_blank_line(buffer) {
            Some((end, separator)) => {
                let block = buffer.split_to(end).freeze();
                let _ = buffer.split_to(separator);
                block
            }
            None if ended && !buffer.is_empty() => buffer.split().freeze(),
            None => return None,
        };
        if let Some(event) = parse_block(&block) {
            return Some(event);
        }
    }
}

/// The position and length of the first blank line (`\n\n` or `\r\n\r\n`).
fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buffer.len() {
        if buffer[i] == b'\n' {
            if buffer.get(i + 1) == Some(&b'\n') {
                return Some((i, 2));
            }
            if buffer.get(i + 1) == Some(&b'\r') && buffer.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

/// An event from one block; comments and blocks without data are skipped.
fn parse_block(block: &Bytes) -> Option<SseEvent> {
    let mut event = None;
    let mut data: Option<BytesMut> = None;
    for line in block.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(0) => continue,
            Some(at) => (&line[..at], &line[at + 1..]),
            None => (line, &b""[..]),
        };
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match field {
            b"data" => {
                let data = data.get_or_insert_with(BytesMut::new);
                if !data.is_empty() {
                    data.extend_from_slice(b"\n");
                }
                data.extend_from_slice(value);
            }
            b"event" => event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
    }
    data.map(|data| SseEvent { event, data: data.freeze() })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn events(parts: &[&str]) -> Vec<SseEvent> {
        let chunks: Vec<Result<Bytes, UpstreamError>> =
            parts.iter().map(|p| Ok(Bytes::copy_from_slice(p.as_bytes()))).collect();
        let stream = sse_from_bytes(futures::stream::iter(chunks));
        stream.filter_map(|e| async move { e.ok() }).collect().await
    }

    #[tokio::test]
    async fn events_split_across_reads_are_joined() {
        let got = events(&["data: {\"a\"", ":1}\n", "\ndata: [DONE]\n\n"]).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].data, Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(got[1].data, Bytes::from_static(b"[DONE]"));
    }

    #[tokio::test]
    async fn named_events_comments_and_crlf() {
        let got =
            events(&[": ping\r\n\r\nevent: message_start\r\ndata: {}\r\n\r\n", "event: ping\ndata: x"]).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].event.as_deref(), Some("message_start"));
        assert_eq!(got[0].data, Bytes::from_static(b"{}"));
        assert_eq!(got[1].event.as_deref(), Some("ping"));
    }

    #[tokio::test]
    async fn multi_line_data_is_joined_with_newlines() {
        let got = events(&["data: a\ndata: b\n\n"]).await;
        assert_eq!(got[0].data, Bytes::from_static(b"a\nb"));
    }

    #[test]
    fn error_messages_come_from_either_error_shape() {
        assert_eq!(error_message(Some(br#"{"error":{"message":"bad model"}}"#)), "bad model");
        assert_eq!(
            error_message(Some(br#"{"type":"error","error":{"type":"x","message":"overloaded"}}"#)),
            "overloaded"
        );
        assert_eq!(error_message(Some(b"Bad Gateway")), "Bad Gateway");
    }

    #[test]
    fn credentials_in_provider_messages_are_redacted() {
        let quoted = br#"{"error":{"message":"Incorrect API key provided: sk-proj-abc1********************xyz9. You can find your API key at https://platform.openai.com."}}"#;
        assert_eq!(
            error_message(Some(quoted)),
            "Incorrect API key provided: [redacted] You can find your API key at https://platform.openai.com."
        );
        let token = b"invalid token 3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c for this model";
        assert_eq!(error_message(Some(token)), "invalid token [redacted] for this model");
        assert_eq!(
            error_message(Some(br#"{"error":{"message":"model gpt-4o-mini-2024-07-18 not found"}}"#)),
            "model gpt-4o-mini-2024-07-18 not found"
        );
    }
}

//! Streams, Anthropic's events → OpenAI chunks: `message_start`, each
//! content block's start, deltas and stop, `message_delta` and
//! `message_stop` become `chat.completion.chunk`s one event at a time, the
//! last one reporting usage only; an `error` event ends the stream with the
//! status it stands for.

use std::collections::HashMap;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::anthropic::protocol;
use crate::anthropic::response::{AnthropicUsage, ResponseBlock, finish_reason};
use crate::upstream::{SseEvent, UpstreamError};
use crate::wire::{ChatCompletionChunk, ChunkChoice, ChunkDelta, FunctionCallDelta, ToolCallDelta};
use crate::{ChunkEvent, EventStream};

#[derive(Debug, Deserialize)]
struct MessageStart {
    message: StartedMessage,
}

#[derive(Debug, Deserialize)]
struct StartedMessage {
    id: String,
    model: String,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Debug, Deserialize)]
struct BlockStart {
    index: u32,
    content_block: ResponseBlock,
}

#[derive(Debug, Deserialize)]
struct BlockDelta {
    index: u32,
    delta: Delta,
}

/// The deltas translated; others (thinking, signatures, citations) are skipped.
#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum Delta {
    #[serde(rename = "text_delta")]
    Text { text: String },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: String },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct BlockStop {
    index: u32,
}

#[derive(Debug, Deserialize)]
struct MessageDelta {
    delta: StopDelta,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Debug, Deserialize)]
struct StopDelta {
    stop_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StreamError {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

/// A `tool_use` block being streamed.
#[derive(Debug, Clone, Copy)]
struct ToolBlock {
    /// Its place among the message's tool calls: OpenAI's `index`.
    index: u32,
    /// Whether any argument text was sent for it yet.
    has_arguments: bool,
}

/// Turns Anthropic's stream events, one at a time, into OpenAI chunks.
#[derive(Debug)]
struct StreamTranslator {
    id: String,
    model: String,
    created: i64,
    usage: AnthropicUsage,
    /// The message's `tool_use` blocks, by Anthropic's block index.
    tool_blocks: HashMap<u32, ToolBlock>,
}

impl StreamTranslator {
    fn new(created: i64) -> Self {
        Self {
            id: String::new(),
            model: String::new(),
            created,
            usage: AnthropicUsage::default(),
            tool_blocks: HashMap::new(),
        }
    }

    /// The chunks one event of the stream, named `event`, comes to.
    fn translate(&mut self, event: &str, data: &[u8]) -> Result<Vec<ChatCompletionChunk>, UpstreamError> {
        match event {
            "message_start" => Ok(self.message_start(parse(data)?)),
            "content_block_start" => Ok(self.block_start(parse(data)?)),
            "content_block_delta" => self.block_delta(parse(data)?),
            "content_block_stop" => Ok(self.block_stop(&parse(data)?)),
            "message_delta" => Ok(self.message_delta(parse(data)?)),
            "message_stop" => Ok(vec![self.usage_chunk()]),
            "error" => Err(stream_error(parse(data)?)),
            // `ping`, and event types Anthropic may add.
            _ => Ok(Vec::new()),
        }
    }

    fn message_start(&mut self, start: MessageStart) -> Vec<ChatCompletionChunk> {
        self.id = start.message.id;
        self.model = start.message.model;
        // `message_start` counts the output so far (usually 1); only
        // `message_delta` has the total. A stream cut before it reports no
        // output, so the ticket counts the output itself.
        self.usage = AnthropicUsage { output_tokens: None, ..start.message.usage };
        let delta = ChunkDelta { role: Some("assistant".to_owned()), ..ChunkDelta::default() };
        vec![self.chunk(delta, None)]
    }

    fn block_start(&mut self, start: BlockStart) -> Vec<ChatCompletionChunk> {
        match start.content_block {
            ResponseBlock::Text { text } if !text.is_empty() => vec![self.chunk(text_delta(text), None)],
            ResponseBlock::ToolUse { id, name, .. } => {
                let index = u32::try_from(self.tool_blocks.len()).unwrap_or(u32::MAX);
                self.tool_blocks.insert(start.index, ToolBlock { index, has_arguments: false });
                let call = ToolCallDelta {
                    index,
                    id: Some(id),
                    kind: Some("function".to_owned()),
                    function: Some(FunctionCallDelta { name: Some(name), arguments: Some(String::new()) }),
                };
                vec![self.chunk(tool_call_delta(call), None)]
            }
            _ => Vec::new(),
        }
    }

    fn block_delta(&mut self, delta: BlockDelta) -> Result<Vec<ChatCompletionChunk>, UpstreamError> {
        match delta.delta {
            Delta::Text { text } if !text.is_empty() => Ok(vec![self.chunk(text_delta(text), None)]),
            Delta::InputJson { partial_json } if !partial_json.is_empty() => {
                let block = self.tool_blocks.get_mut(&delta.index).ok_or_else(|| {
                    UpstreamError::Protocol(format!(
                        "arguments for block {}, not a tool_use block",
                        delta.index
                    ))
                })?;
                block.has_arguments = true;
                let index = block.index;
                Ok(vec![self.chunk(arguments_delta(index, partial_json), None)])
            }
            _ => Ok(Vec::new()),
        }
    }

    /// A tool call without parameters streams no argument text; OpenAI
    /// clients expect a JSON object, so it gets `{}`.
    fn block_stop(&mut self, stop: &BlockStop) -> Vec<ChatCompletionChunk> {
        match self.tool_blocks.get(&stop.index) {
            Some(block) if !block.has_arguments => {
                vec![self.chunk(arguments_delta(block.index, "{}".to_owned()), None)]
            }
            _ => Vec::new(),
        }
    }

    fn message_delta(&mut self, delta: MessageDelta) -> Vec<ChatCompletionChunk> {
        self.usage.update(delta.usage);
        let reason = finish_reason(delta.delta.stop_reason.as_deref());
        vec![self.chunk(ChunkDelta::default(), Some(reason))]
    }

    fn usage_chunk(&self) -> ChatCompletionChunk {
        ChatCompletionChunk {
            choices: Vec::new(),
            usage: Some(self.usage.to_openai()),
            ..self.chunk(ChunkDelta::default(), None)
        }
    }

    fn chunk(&self, delta: ChunkDelta, finish_reason: Option<String>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice { index: 0, delta, finish_reason }],
            usage: None,
        }
    }
}

fn parse<T: DeserializeOwned>(data: &[u8]) -> Result<T, UpstreamError> {
    serde_json::from_slice(data)
        .map_err(|e| UpstreamError::Protocol(format!("not a Messages API stream event: {e}")))
}

fn text_delta(text: String) -> ChunkDelta {
    ChunkDelta { content: Some(text), ..ChunkDelta::default() }
}

fn tool_call_delta(call: ToolCallDelta) -> ChunkDelta {
    ChunkDelta { tool_calls: Some(vec![call]), ..ChunkDelta::default() }
}

fn arguments_delta(index: u32, arguments: String) -> ChunkDelta {
    tool_call_delta(ToolCallDelta {
        index,
        function: Some(FunctionCallDelta { name: None, arguments: Some(arguments) }),
        ..ToolCallDelta::default()
    })
}

/// An `error` event as the status Anthropic would have answered with, so
/// that overloads and rate limits count as worth retrying.
fn stream_error(error: StreamError) -> UpstreamError {
    let status = match error.error.kind.as_str() {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        // Anthropic's own 529, as the standard status of the same meaning.
        "overloaded_error" => 503,
        _ => 502,
    };
    UpstreamError::Status { status, message: error.error.message }
}

/// The chunk events of a stream of Anthropic events; it ends after the
/// first error.
pub(super) fn chunk_events<S>(events: S, created: i64) -> EventStream
where
    S: Stream<Item = Result<SseEvent, UpstreamError>> + Send + 'static,
{
    let state = (StreamTranslator::new(created), false);
    events
        .scan(state, |(translator, failed), event| {
            if *failed {
                return futures::future::ready(None);
            }
            let chunks = event.and_then(|event| {
                translator.translate(event.event.as_deref().unwrap_or_default(), &event.data)
            });
            let items: Vec<_> = match chunks {
                Ok(chunks) => chunks.iter().map(chunk_event).collect(),
                Err(err) => {
                    *failed = true;
                    vec![Err(err)]
                }
            };
            futures::future::ready(Some(futures::stream::iter(items)))
        })
        .flatten()
        .boxed()
}

fn chunk_event(chunk: &ChatCompletionChunk) -> Result<ChunkEvent, UpstreamError> {
    let data = serde_json::to_vec(chunk).map_err(protocol)?;
    Ok(ChunkEvent { data: Bytes::from(data), usage: chunk.usage, usage_only: chunk.choices.is_empty() })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::anthropic::testing::{
        CREATED, MODEL, STREAM_ERROR, STREAM_TEXT, STREAM_TOOL_USE, choices, finish, json_of,
    };
    use crate::upstream;
    use crate::wire::Usage;

    /// The chunk events a recorded stream comes to, through the real SSE reader.
    async fn stream(fixture: &'static str) -> Vec<Result<ChunkEvent, UpstreamError>> {
        let bytes = futures::stream::iter([Ok(Bytes::from_static(fixture.as_bytes()))]);
        chunk_events(upstream::sse_from_bytes(bytes), CREATED).collect().await
    }

    fn ok_events(events: Vec<Result<ChunkEvent, UpstreamError>>) -> Vec<ChunkEvent> {
        events.into_iter().map(|event| event.unwrap_or_else(|e| panic!("{e}"))).collect()
    }

    fn delta(delta: Value) -> Value {
        json!([{"index": 0, "delta": delta, "finish_reason": null}])
    }

    #[tokio::test]
    async fn a_text_stream_becomes_chunks() {
        let events = ok_events(stream(STREAM_TEXT).await);
        assert_eq!(
            choices(&events),
            vec![
                delta(json!({"role": "assistant"})),
                delta(json!({"content": "Hello"})),
                delta(json!({"content": "! How can I help"})),
                delta(json!({"content": " you today?"})),
                finish("stop"),
                json!([]),
            ]
        );
        for event in &events {
            let chunk = json_of(event);
            assert_eq!(chunk["id"], "msg_01HCDu5LRGeP2o7s2xGmxyx8");
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["model"], MODEL);
            assert_eq!(chunk["created"], CREATED);
        }
        let (last, rest) = events.split_last().unwrap_or_else(|| panic!("no events"));
        assert!(rest.iter().all(|event| !event.usage_only && event.usage.is_none()));
        assert!(last.usage_only);
        assert_eq!(last.usage, Some(Usage::new(21, 12)));
        assert_eq!(
            json_of(last)["usage"],
            json!({"prompt_tokens": 21, "completion_tokens": 12, "total_tokens": 33})
        );
    }

    #[tokio::test]
    async fn a_tool_use_stream_becomes_tool_call_deltas() {
        let events = ok_events(stream(STREAM_TOOL_USE).await);
        let choices = choices(&events);
        assert_eq!(
            choices[..4],
            [
                delta(json!({"role": "assistant"})),
                delta(json!({"content": "Okay"})),
                delta(json!({"content": ", let's check the weather for San Francisco, CA:"})),
                // Anthropic's block 1 is the message's first tool call: index 0.
                delta(json!({"tool_calls": [{
                    "index": 0,
                    "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }]})),
            ]
        );
        let pieces = &choices[4..choices.len() - 2];
        assert_eq!(pieces.len(), 8, "one chunk per non-empty input_json_delta");
        let mut arguments = String::new();
        for piece in pieces {
            let call = &piece[0]["delta"]["tool_calls"][0];
            assert_eq!(call["index"], 0);
            assert!(call.get("id").is_none() && call["function"].get("name").is_none(), "{call}");
            arguments.push_str(call["function"]["arguments"].as_str().unwrap_or_else(|| panic!("{call}")));
        }
        let arguments: Value = serde_json::from_str(&arguments).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(arguments, json!({"location": "San Francisco, CA", "unit": "fahrenheit"}));
        assert_eq!(choices[choices.len() - 2], finish("tool_calls"));
        let last = events.last().unwrap_or_else(|| panic!("no events"));
        assert!(last.usage_only);
        assert_eq!(last.usage, Some(Usage::new(472, 89)));
    }

    #[test]
    fn tool_calls_are_counted_per_message_and_empty_arguments_become_an_object() {
        let mut translator = StreamTranslator::new(CREATED);
        let events = [
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":30,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_a","name":"get_weather","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"city\":\"Oslo\"}"}}"#,
            ),
            ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_b","name":"get_time","input":{}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            ),
            ("content_block_stop", r#"{"type":"content_block_stop","index":1}"#),
        ];
        let mut calls = Vec::new();
        for (event, data) in events {
            let chunks = translator.translate(event, data.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
            for chunk in chunks {
                calls.extend(chunk.choices.into_iter().flat_map(|c| c.delta.tool_calls.unwrap_or_default()));
            }
        }
        let summary: Vec<_> = calls
            .iter()
            .map(|call| {
                let function = call.function.clone().unwrap_or_default();
                (call.index, call.id.clone(), function.arguments.unwrap_or_default())
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, Some("toolu_a".to_owned()), String::new()),
                (0, None, r#"{"city":"Oslo"}"#.to_owned()),
                (1, Some("toolu_b".to_owned()), String::new()),
                (1, None, "{}".to_owned()),
            ]
        );
    }

    #[test]
    fn a_stream_whose_delta_reports_no_output_reports_none_so_it_is_counted() {
        let mut translator = StreamTranslator::new(CREATED);
        let events = [
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-haiku-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":30,"output_tokens":1}}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
            ),
            ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{}}"#),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        let mut last = None;
        for (event, data) in events {
            last = translator.translate(event, data.as_bytes()).unwrap_or_else(|e| panic!("{e}")).pop();
        }
        // The prompt as reported; no completion count (not message_start's
        // running 1), which the ticket then counts from the text.
        assert_eq!(last.and_then(|chunk| chunk.usage), Some(Usage::new(30, 0)));
    }

    #[tokio::test]
    async fn an_error_event_ends_the_stream_with_its_status() {
        let events = stream(STREAM_ERROR).await;
        assert_eq!(events.len(), 3, "role, text, then the error");
        let chunks = ok_events(events[..2].to_vec());
        assert_eq!(
            choices(&chunks),
            vec![delta(json!({"role": "assistant"})), delta(json!({"content": "Once upon"}))]
        );
        match &events[2] {
            Err(err @ UpstreamError::Status { status: 503, message }) => {
                assert_eq!(message, "Overloaded");
                assert!(err.is_retryable());
            }
            other => panic!("expected a 503, got {other:?}"),
        }
    }

    #[test]
    fn error_events_keep_their_meaning() {
        let status = |kind: &str| {
            let data = json!({"type": "error", "error": {"type": kind, "message": "m"}}).to_string();
            match StreamTranslator::new(CREATED).translate("error", data.as_bytes()) {
                Err(UpstreamError::Status { status, .. }) => status,
                other => panic!("expected a status, got {other:?}"),
            }
        };
        assert_eq!(status("overloaded_error"), 503);
        assert_eq!(status("rate_limit_error"), 429);
        assert_eq!(status("invalid_request_error"), 400);
        assert_eq!(status("api_error"), 502);
    }

    #[test]
    fn unreadable_events_are_protocol_errors() {
        let mut translator = StreamTranslator::new(CREATED);
        assert!(matches!(translator.translate("message_start", b"{"), Err(UpstreamError::Protocol(_))));
        let stray = br#"{"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{"}}"#;
        assert!(matches!(
            translator.translate("content_block_delta", stray),
            Err(UpstreamError::Protocol(_))
        ));
        assert!(
            matches!(translator.translate("ping", br#"{"type": "ping"}"#), Ok(chunks) if chunks.is_empty())
        );
    }
}

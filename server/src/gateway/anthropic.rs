//! Anthropic's Messages API as a provider. This module owns the translation
//! both ways: an OpenAI chat request becomes a Messages request (system
//! prompt, alternating turns of content blocks, tools), and Anthropic's
//! answer — a whole message or its stream of events — becomes a
//! `chat.completion` or `chat.completion.chunk`s. HTTP, timeouts and SSE
//! parsing are `upstream`'s.
//!
//! Only fields Anthropic has a counterpart for are sent (`user` goes as
//! `metadata.user_id`); what it cannot do — several choices, tool arguments
//! that are not a JSON object, audio or file parts — is refused with a 400
//! rather than dropped. Empty tool arguments mean `{}`, both ways.

use std::collections::HashMap;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::gateway::fields;
use crate::gateway::upstream;
use crate::gateway::upstream::{SseEvent, UpstreamError};
use crate::gateway::wire::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage,
    ChunkChoice, ChunkDelta, FunctionCall, FunctionCallDelta, Tool, ToolCall, ToolCallDelta, Usage,
};
use crate::gateway::{ChunkEvent, EventStream, Reply, Timeouts};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com/v1";

/// The Messages API version this translation follows.
const API_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; this is sent when the client set none.
const DEFAULT_MAX_TOKENS: u32 = 4096;

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

/// The request is one Anthropic cannot take; the client must change it.
fn bad_request(message: impl Into<String>) -> UpstreamError {
    UpstreamError::Status { status: 400, message: message.into() }
}

// Requests: OpenAI → Anthropic

/// `POST /v1/messages`. Only what is named here is sent.
#[derive(Debug, Serialize)]
struct MessagesRequest {
    model: String,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<Turn>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolDefinition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    /// Fields the operator passes through.
    #[serde(flatten)]
    extra: serde_json::Map<String, Value>,
}

/// One turn of the conversation: `user` or `assistant`.
#[derive(Debug, Serialize)]
struct Turn {
    role: &'static str,
    content: Vec<Block>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    Image {
        source: ImageSource,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<Block>,
    },
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug, Serialize)]
struct ToolDefinition {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    input_schema: Value,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ToolChoice {
    Auto,
    Any,
    None,
    Tool { name: String },
}

#[derive(Debug, Serialize)]
struct Metadata {
    user_id: String,
}

fn messages_request(request: &ChatCompletionRequest, model: &str) -> Result<MessagesRequest, UpstreamError> {
    if request.n.is_some_and(|n| n > 1) {
        return Err(bad_request("Anthropic answers with one choice: n must be 1"));
    }
    let (system, messages) = conversation(&request.messages)?;
    Ok(MessagesRequest {
        model: model.to_owned(),
        max_tokens: request.max_output_tokens().unwrap_or(DEFAULT_MAX_TOKENS),
        system,
        messages,
        temperature: request.temperature,
        top_p: request.top_p,
        stop_sequences: stop_sequences(request.stop.as_ref())?,
        tools: request.tools.iter().flatten().map(tool_definition).collect(),
        tool_choice: request.tool_choice.as_ref().map(tool_choice).transpose()?,
        metadata: request.user.clone().map(|user_id| Metadata { user_id }),
        stream: request.is_stream(),
        extra: serde_json::Map::new(),
    })
}

/// The system prompt (every `system` and `developer` message, joined) and
/// the turns of the conversation.
fn conversation(messages: &[ChatMessage]) -> Result<(Option<String>, Vec<Turn>), UpstreamError> {
    let mut system = Vec::new();
    let mut turns = Vec::new();
    for message in messages {
        let (role, blocks) = match message.role.as_str() {
            "system" | "developer" => {
                system.push(message.text());
                continue;
            }
            "user" => ("user", content_blocks(message.content.as_ref())?),
            "assistant" => ("assistant", assistant_blocks(message)?),
            "tool" => ("user", vec![tool_result(message)?]),
            other => return Err(bad_request(format!("unknown message role {other:?}"))),
        };
        push_turn(&mut turns, role, blocks);
    }
    system.retain(|text| !text.is_empty());
    Ok(((!system.is_empty()).then(|| system.join("\n\n")), turns))
}

/// Adds blocks to the conversation, into the last turn when it has the same
/// role: Anthropic wants user and assistant turns to alternate, so
/// consecutive tool results (and a user message after them) share one turn.
fn push_turn(turns: &mut Vec<Turn>, role: &'static str, blocks: Vec<Block>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.content.extend(blocks),
        _ => turns.push(Turn { role, content: blocks }),
    }
}

/// The blocks of a string or an array of content parts. Empty texts are
/// left out: Anthropic refuses empty text blocks.
fn content_blocks(content: Option<&Value>) -> Result<Vec<Block>, UpstreamError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(text_block(text).into_iter().collect()),
        Some(Value::Array(parts)) => parts.iter().filter_map(|part| content_part(part).transpose()).collect(),
        Some(_) => Err(bad_request("message content must be a string or an array of content parts")),
    }
}

fn text_block(text: &str) -> Option<Block> {
    (!text.is_empty()).then(|| Block::Text { text: text.to_owned() })
}

fn content_part(part: &Value) -> Result<Option<Block>, UpstreamError> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => {
            let text = part.get("text").and_then(Value::as_str);
            Ok(text_block(text.ok_or_else(|| bad_request("a text content part needs text"))?))
        }
        Some("image_url") => {
            let url = part.pointer("/image_url/url").and_then(Value::as_str);
            let source =
                image_source(url.ok_or_else(|| bad_request("an image_url part needs image_url.url"))?)?;
            Ok(Some(Block::Image { source }))
        }
        other => Err(bad_request(format!(
            "content parts of type {} cannot be sent to Anthropic",
            other.unwrap_or("(none)")
        ))),
    }
}

/// A `data:<media type>;base64,<data>` URL as inline data; an http(s) URL as
/// a URL Anthropic fetches itself.
fn image_source(url: &str) -> Result<ImageSource, UpstreamError> {
    if let Some(data_url) = url.strip_prefix("data:") {
        let (media_type, data) = data_url
            .split_once(";base64,")
            .ok_or_else(|| bad_request("image data URLs must be data:<media type>;base64,<data>"))?;
        return Ok(ImageSource::Base64 { media_type: media_type.to_owned(), data: data.to_owned() });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(ImageSource::Url { url: url.to_owned() });
    }
    Err(bad_request("image URLs must be data: or http(s) URLs"))
}

/// An assistant message's text, then its tool calls as `tool_use` blocks.
fn assistant_blocks(message: &ChatMessage) -> Result<Vec<Block>, UpstreamError> {
    let mut blocks = content_blocks(message.content.as_ref())?;
    for call in message.tool_calls.iter().flatten() {
        let input = tool_input(call)?;
        blocks.push(Block::ToolUse { id: call.id.clone(), name: call.function.name.clone(), input });
    }
    Ok(blocks)
}

/// A tool call's arguments as the JSON object Anthropic wants. Empty
/// arguments mean no arguments; anything else must parse as an object.
fn tool_input(call: &ToolCall) -> Result<Value, UpstreamError> {
    let arguments = call.function.arguments.trim();
    if arguments.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str(arguments) {
        Ok(input @ Value::Object(_)) => Ok(input),
        Ok(_) => Err(bad_request(format!("the arguments of tool call {:?} must be a JSON object", call.id))),
        Err(err) => {
            Err(bad_request(format!("the arguments of tool call {:?} are not valid JSON: {err}", call.id)))
        }
    }
}

fn tool_result(message: &ChatMessage) -> Result<Block, UpstreamError> {
    let tool_use_id =
        message.tool_call_id.clone().ok_or_else(|| bad_request("a tool message needs tool_call_id"))?;
    Ok(Block::ToolResult { tool_use_id, content: content_blocks(message.content.as_ref())? })
}

fn stop_sequences(stop: Option<&Value>) -> Result<Vec<String>, UpstreamError> {
    let invalid = || bad_request("stop must be a string or an array of strings");
    match stop {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(many)) => {
            many.iter().map(|stop| stop.as_str().map(str::to_owned).ok_or_else(invalid)).collect()
        }
        Some(_) => Err(invalid()),
    }
}

fn tool_definition(tool: &Tool) -> ToolDefinition {
    ToolDefinition {
        name: tool.function.name.clone(),
        description: tool.function.description.clone(),
        input_schema: tool.function.parameters.clone().unwrap_or_else(|| json!({"type": "object"})),
    }
}

fn tool_choice(choice: &Value) -> Result<ToolChoice, UpstreamError> {
    match choice.as_str() {
        Some("auto") => return Ok(ToolChoice::Auto),
        Some("required") => return Ok(ToolChoice::Any),
        Some("none") => return Ok(ToolChoice::None),
        _ => {}
    }
    match choice.pointer("/function/name").and_then(Value::as_str) {
        Some(name) => Ok(ToolChoice::Tool { name: name.to_owned() }),
        None => Err(bad_request(
            "tool_choice must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": …}}",
        )),
    }
}

// Answers: Anthropic → OpenAI

/// A whole message, as `POST /v1/messages` answers without streaming.
#[derive(Debug, Deserialize)]
struct MessagesResponse {
    id: String,
    model: String,
    content: Vec<ResponseBlock>,
    stop_reason: Option<String>,
    /// Missing, the ticket counts the answer itself.
    #[serde(default)]
    usage: AnthropicUsage,
}

/// The content blocks translated; others (such as `thinking`) are skipped.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

/// Anthropic's token counts; streams report them in pieces.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct AnthropicUsage {
    input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Takes the counts a later report has, keeping the others.
    fn update(&mut self, later: Self) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.cache_creation_input_tokens =
            later.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later.cache_read_input_tokens.or(self.cache_read_input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
    }

    /// OpenAI counts cached prompt tokens as prompt tokens; Anthropic apart.
    fn to_openai(self) -> Usage {
        let prompt = [self.input_tokens, self.cache_read_input_tokens, self.cache_creation_input_tokens];
        Usage::new(prompt.into_iter().flatten().sum(), self.output_tokens.unwrap_or(0))
    }
}

fn finish_reason(stop_reason: Option<&str>) -> String {
    let reason = match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        _ => "stop",
    };
    reason.to_owned()
}

fn chat_completion(message: MessagesResponse, created: i64) -> ChatCompletion {
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block {
            ResponseBlock::Text { text: piece } => text.get_or_insert_default().push_str(&piece),
            ResponseBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                kind: "function".to_owned(),
                function: FunctionCall { name, arguments: input.to_string() },
            }),
            ResponseBlock::Other => {}
        }
    }
    let tool_calls = (!tool_calls.is_empty()).then_some(tool_calls);
    ChatCompletion {
        id: message.id,
        object: "chat.completion".to_owned(),
        created,
        model: message.model,
        choices: vec![ChatChoice {
            index: 0,
            message: AssistantMessage { role: "assistant".to_owned(), content: text, tool_calls },
            finish_reason: Some(finish_reason(message.stop_reason.as_deref())),
        }],
        usage: Some(message.usage.to_openai()),
    }
}

// Streams: Anthropic's events → OpenAI chunks

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
fn chunk_events<S>(events: S, created: i64) -> EventStream
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
    use std::time::Duration;

    use poem::http::StatusCode;
    use tokio::sync::mpsc;

    use super::*;

    /// Recorded answers of the Messages API, as Anthropic sends them.
    const MESSAGE_TEXT: &str = include_str!("anthropic/fixtures/message_text.json");
    const MESSAGE_TOOL_USE: &str = include_str!("anthropic/fixtures/message_tool_use.json");
    const STREAM_TEXT: &str = include_str!("anthropic/fixtures/stream_text.txt");
    const STREAM_TOOL_USE: &str = include_str!("anthropic/fixtures/stream_tool_use.txt");
    const STREAM_ERROR: &str = include_str!("anthropic/fixtures/stream_error.txt");

    const CREATED: i64 = 1_700_000_000;
    const MODEL: &str = "claude-sonnet-4-5-20250929";
    const KEY: &str = "sk-ant-test-key";

    fn request(value: Value) -> ChatCompletionRequest {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    fn translated(request: &ChatCompletionRequest) -> Result<Value, UpstreamError> {
        let outgoing = messages_request(request, MODEL)?;
        Ok(serde_json::to_value(outgoing).unwrap_or_else(|e| panic!("{e}")))
    }

    fn completion(fixture: &str) -> Value {
        let message: MessagesResponse = serde_json::from_str(fixture).unwrap_or_else(|e| panic!("{e}"));
        serde_json::to_value(chat_completion(message, CREATED)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The chunk events a recorded stream comes to, through the real SSE reader.
    async fn stream(fixture: &'static str) -> Vec<Result<ChunkEvent, UpstreamError>> {
        let bytes = futures::stream::iter([Ok(Bytes::from_static(fixture.as_bytes()))]);
        chunk_events(upstream::sse_from_bytes(bytes), CREATED).collect().await
    }

    fn ok_events(events: Vec<Result<ChunkEvent, UpstreamError>>) -> Vec<ChunkEvent> {
        events.into_iter().map(|event| event.unwrap_or_else(|e| panic!("{e}"))).collect()
    }

    fn json_of(event: &ChunkEvent) -> Value {
        serde_json::from_slice(&event.data).unwrap_or_else(|e| panic!("{e}"))
    }

    fn choices(events: &[ChunkEvent]) -> Vec<Value> {
        events.iter().map(|event| json_of(event)["choices"].clone()).collect()
    }

    fn delta(delta: Value) -> Value {
        json!([{"index": 0, "delta": delta, "finish_reason": null}])
    }

    fn finish(reason: &str) -> Value {
        json!([{"index": 0, "delta": {}, "finish_reason": reason}])
    }

    #[test]
    fn a_text_message_becomes_a_chat_completion() {
        assert_eq!(
            completion(MESSAGE_TEXT),
            json!({
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "object": "chat.completion",
                "created": CREATED,
                "model": MODEL,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": "The capital of France is Paris."},
                    "finish_reason": "stop",
                }],
                // Cache reads count as prompt tokens.
                "usage": {"prompt_tokens": 2062, "completion_tokens": 10, "total_tokens": 2072},
            })
        );
    }

    #[test]
    fn a_tool_use_message_becomes_tool_calls() {
        assert_eq!(
            completion(MESSAGE_TOOL_USE),
            json!({
                "id": "msg_01Aq9w938a90dw8q",
                "object": "chat.completion",
                "created": CREATED,
                "model": MODEL,
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "I'll check the current weather in San Francisco for you.",
                        "tool_calls": [{
                            "id": "toolu_01A09q90qw90lq917835lq9",
                            "type": "function",
                            "function": {
                                "name": "get_weather",
                                "arguments": r#"{"location":"San Francisco, CA","unit":"celsius"}"#,
                            },
                        }],
                    },
                    "finish_reason": "tool_calls",
                }],
                "usage": {"prompt_tokens": 384, "completion_tokens": 76, "total_tokens": 460},
            })
        );
    }

    #[test]
    fn stop_reasons_become_finish_reasons() {
        assert_eq!(finish_reason(Some("end_turn")), "stop");
        assert_eq!(finish_reason(Some("stop_sequence")), "stop");
        assert_eq!(finish_reason(Some("max_tokens")), "length");
        assert_eq!(finish_reason(Some("tool_use")), "tool_calls");
        assert_eq!(finish_reason(Some("pause_turn")), "stop");
        assert_eq!(finish_reason(None), "stop");
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

    #[test]
    fn requests_are_translated_to_the_messages_api() {
        let request = request(json!({
            "model": "claude",
            "messages": [
                {"role": "system", "content": "You are a weather assistant."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in Celsius."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Is it warmer in Lyon or in Paris? This is my street:"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/street.jpg", "detail": "low"}},
                ]},
                {"role": "assistant", "content": "Let me look both up.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Lyon\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "14°C, rain"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "18°C, sunny"}]},
                {"role": "user", "content": "So?"},
            ],
            "tools": [
                {"type": "function", "function": {
                    "name": "get_weather",
                    "description": "The current weather of a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                }},
                {"type": "function", "function": {"name": "get_time"}},
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "stop": ["END", "Observation:"],
            "max_completion_tokens": 512,
            "max_tokens": 100,
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "user-42",
            "stream": true,
            "stream_options": {"include_usage": true},
            "frequency_penalty": 0.5,
            "logit_bias": {"50256": -100},
        }));
        let text = |text: &str| json!({"type": "text", "text": text});
        let expected = json!({
            "model": MODEL,
            "max_tokens": 512,
            "system": "You are a weather assistant.\n\nAnswer in Celsius.",
            "messages": [
                {"role": "user", "content": [
                    text("Is it warmer in Lyon or in Paris? This is my street:"),
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/street.jpg"}},
                ]},
                {"role": "assistant", "content": [
                    text("Let me look both up."),
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Lyon"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Paris"}},
                ]},
                // Both results and the next user message: one user turn.
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": [text("14°C, rain")]},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [text("18°C, sunny")]},
                    text("So?"),
                ]},
            ],
            "temperature": 0.2,
            "top_p": 0.9,
            "stop_sequences": ["END", "Observation:"],
            "tools": [
                {
                    "name": "get_weather",
                    "description": "The current weather of a city",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                },
                {"name": "get_time", "input_schema": {"type": "object"}},
            ],
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "metadata": {"user_id": "user-42"},
            "stream": true,
        });
        assert_eq!(translated(&request).unwrap_or_else(|e| panic!("{e}")), expected);
    }

    #[test]
    fn tool_choices_stops_and_defaults() {
        let with = |extra: Value| {
            let mut value = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            if let (Some(object), Value::Object(extra)) = (value.as_object_mut(), extra) {
                object.extend(extra);
            }
            translated(&request(value)).unwrap_or_else(|e| panic!("{e}"))
        };
        let plain = with(json!({}));
        assert_eq!(plain["max_tokens"], DEFAULT_MAX_TOKENS);
        for absent in ["system", "stream", "stop_sequences", "tools", "tool_choice", "temperature"] {
            assert!(plain.get(absent).is_none(), "{absent} in {plain}");
        }
        assert_eq!(plain["messages"], json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]));
        assert_eq!(with(json!({"max_tokens": 77}))["max_tokens"], 77);
        assert_eq!(with(json!({"stop": "END"}))["stop_sequences"], json!(["END"]));
        assert_eq!(with(json!({"tool_choice": "auto"}))["tool_choice"], json!({"type": "auto"}));
        assert_eq!(with(json!({"tool_choice": "required"}))["tool_choice"], json!({"type": "any"}));
        assert_eq!(with(json!({"tool_choice": "none"}))["tool_choice"], json!({"type": "none"}));
    }

    fn refusal(value: Value) -> String {
        match translated(&request(value)) {
            Err(err @ UpstreamError::Status { status: 400, .. }) => {
                assert!(!err.is_retryable());
                err.to_string()
            }
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    fn calling_with(arguments: &str) -> Value {
        json!({"model": "m", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": arguments}},
            ]},
            {"role": "tool", "tool_call_id": "call_9", "content": "sunny"},
        ]})
    }

    #[test]
    fn invalid_tool_call_arguments_are_refused() {
        let message = refusal(calling_with(r#"{"city": "Paris""#));
        assert!(message.contains("call_9") && message.contains("not valid JSON"), "{message}");
        let message = refusal(calling_with(r#"["Paris"]"#));
        assert!(message.contains("must be a JSON object"), "{message}");

        let empty = translated(&request(calling_with(""))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(empty["messages"][1]["content"][0]["input"], json!({}));
    }

    #[test]
    fn requests_anthropic_cannot_take_are_refused() {
        let part = json!({"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}});
        let message = refusal(json!({"model": "m", "messages": [{"role": "user", "content": [part]}]}));
        assert!(message.contains("input_audio"), "{message}");
        let file = json!({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}});
        refusal(json!({"model": "m", "messages": [{"role": "user", "content": [file]}]}));
        refusal(json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "hi"}]}));
        refusal(json!({"model": "m", "stop": 3, "messages": [{"role": "user", "content": "hi"}]}));
        refusal(
            json!({"model": "m", "tool_choice": "sometimes", "messages": [{"role": "user", "content": "hi"}]}),
        );
        refusal(json!({"model": "m", "messages": [{"role": "tool", "content": "no id"}]}));
    }

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

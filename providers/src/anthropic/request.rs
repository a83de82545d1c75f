//! Requests, OpenAI → Anthropic: a chat request becomes the body of
//! `POST /v1/messages`. Every `system` and `developer` message joins the
//! system prompt; the other messages become alternating `user` and
//! `assistant` turns of content blocks (tool calls as `tool_use`, tool
//! messages as `tool_result`), and tools, tool choice, stops and limits
//! their Anthropic counterparts. What has none is refused with a 400.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::upstream::UpstreamError;
use crate::wire::{ChatCompletionRequest, ChatMessage, Tool, ToolCall};

/// Anthropic requires `max_tokens`; this is sent when the client set none.
pub(super) const DEFAULT_MAX_TOKENS: u32 = 4096;

/// The request is one Anthropic cannot take; the client must change it.
fn bad_request(message: impl Into<String>) -> UpstreamError {
    UpstreamError::Status { status: 400, message: message.into() }
}

/// `POST /v1/messages`. Only what is named here is sent.
#[derive(Debug, Serialize)]
pub(super) struct MessagesRequest {
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
    pub(super) extra: serde_json::Map<String, Value>,
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

pub(super) fn messages_request(
    request: &ChatCompletionRequest,
    model: &str,
) -> Result<MessagesRequest, UpstreamError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anthropic::testing::{MODEL, request};

    fn translated(request: &ChatCompletionRequest) -> Result<Value, UpstreamError> {
        let outgoing = messages_request(request, MODEL)?;
        Ok(serde_json::to_value(outgoing).unwrap_or_else(|e| panic!("{e}")))
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
}

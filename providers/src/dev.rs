//! The built-in `dev` provider: no network, deterministic answers, so a fresh
//! `switchyard serve` answers out of the box and agent loops can be tested.
//!
//! What it does, exactly:
//! - **Text.** It answers `You said: <text of the last user message>`.
//! - **Tool calls.** When the request offers tools and the last message is a
//!   user message that names one of them (the first offered tool whose name
//!   appears in the text), it calls that tool with the first JSON object in
//!   the text as arguments (`{}` when there is none), with
//!   `finish_reason: "tool_calls"`. `tool_choice: "none"` turns this off.
//! - **After tool results.** When the last message is a `tool` message, it
//!   answers `Tool results: <name>: <content>; …` for the trailing tool
//!   messages, in order.
//! - **Tokens.** Every text counts as `ceil(characters / 4)` tokens, plus one
//!   per prompt message; `max_tokens` cuts the answer at that many tokens with
//!   `finish_reason: "length"`.
//! - **Streams** send the role, then the answer word by word (a tool call as
//!   its name, then its arguments in two pieces), then the finish reason, then
//!   a usage chunk.
//! - **`n`** choices are all the same answer, with indexes 0 to n - 1 (in a
//!   stream one after the other); completion tokens count each of them.
//! - **Delay.** With `delay_ms` configured, every chat answer waits that long
//!   first (embeddings do not), to stand in for a slow model.
//! - **Embeddings** are 64 numbers (or `dimensions`), a hashed bag of the
//!   lowercased words of the input, scaled to unit length: equal texts get
//!   equal vectors and texts sharing words point the same way. Token-id
//!   input embeds each id as the word `t<id>` and counts one token per id.

use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::upstream::UpstreamError;
use crate::wire::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage,
    ChunkChoice, ChunkDelta, Embedding, EmbeddingInputs, EmbeddingList, EmbeddingRequest, EmbeddingUsage,
    FunctionCall, FunctionCallDelta, ToolCall, ToolCallDelta, Usage,
};
use crate::{ChunkEvent, Reply};

/// Default length of a `dev` embedding.
pub const EMBEDDING_DIMENSIONS: usize = 64;
/// Most dimensions a `dev` embedding may have.
const MAX_DIMENSIONS: u32 = 4096;

/// The `dev` provider; `delay` holds each answer back that long, to stand
/// in for a slow model in tests and benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dev {
    pub delay: std::time::Duration,
}

/// What the dev model decided to say.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Text { text: String, finish_reason: &'static str },
    Call(ToolCall),
}

impl Dev {
    /// Answers `request`; an answer that does not serialise is a protocol
    /// error, as it would be from a real provider.
    pub fn chat(&self, request: &ChatCompletionRequest, model: &str) -> Result<Reply, UpstreamError> {
        let answer = answer(request);
        let prompt_tokens = prompt_tokens(&request.messages);
        let completion_tokens = match &answer {
            Answer::Text { text, .. } => count_tokens(text),
            Answer::Call(call) => count_tokens(&call.function.name) + count_tokens(&call.function.arguments),
        };
        let choices = request.n.unwrap_or(1).max(1);
        let usage = Usage::new(prompt_tokens, completion_tokens * u64::from(choices));
        let id = format!("chatcmpl-{}", ulid::Ulid::new());
        let created = chrono::Utc::now().timestamp();
        if request.is_stream() {
            let chunks = stream_chunks(&id, created, model, &answer, choices, usage);
            let events: Vec<Result<ChunkEvent, UpstreamError>> = chunks
                .into_iter()
                .map(|chunk| {
                    let usage_only = chunk.choices.is_empty();
                    let usage = chunk.usage;
                    serde_json::to_vec(&chunk)
                        .map(|data| ChunkEvent { data: Bytes::from(data), usage, usage_only })
                        .map_err(|e| UpstreamError::Protocol(e.to_string()))
                })
                .collect();
            return Ok(Reply::Stream(futures::stream::iter(events).boxed()));
        }
        let (message, finish_reason) = match answer {
            Answer::Text { text, finish_reason } => (
                AssistantMessage { role: "assistant".to_owned(), content: Some(text), tool_calls: None },
                finish_reason,
            ),
            Answer::Call(call) => (
                AssistantMessage {
                    role: "assistant".to_owned(),
                    content: None,
                    tool_calls: Some(vec![call]),
                },
                "tool_calls",
            ),
        };
        let completion = ChatCompletion {
            id,
            object: "chat.completion".to_owned(),
            created,
            model: model.to_owned(),
            choices: (0..choices)
                .map(|index| ChatChoice {
                    index,
                    message: message.clone(),
                    finish_reason: Some(finish_reason.to_owned()),
                })
                .collect(),
            usage: Some(usage),
        };
        let body = serde_json::to_vec(&completion).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        Ok(Reply::Complete { body: Bytes::from(body), usage: Some(usage) })
    }

    pub fn embed(&self, request: &EmbeddingRequest, model: &str) -> Result<EmbeddingList, UpstreamError> {
        let dimensions = request.dimensions.unwrap_or(EMBEDDING_DIMENSIONS as u32);
        if dimensions == 0 || dimensions > MAX_DIMENSIONS {
            return Err(UpstreamError::Status {
                status: 400,
                message: format!("dimensions must be 1 to {MAX_DIMENSIONS}"),
            });
        }
        let inputs = EmbeddingInputs::parse(&request.input)
            .map_err(|message| UpstreamError::Status { status: 400, message })?;
        let base64 = request.encoding_format.as_deref() == Some("base64");
        let (texts, tokens): (Vec<String>, u64) = match inputs {
            EmbeddingInputs::Texts(texts) => {
                let tokens = texts.iter().map(|text| count_tokens(text)).sum();
                (texts, tokens)
            }
            EmbeddingInputs::Tokens(arrays) => (
                arrays.iter().map(|ids| token_words(ids)).collect(),
                arrays.iter().map(|ids| ids.len() as u64).sum(),
            ),
        };
        let data = texts
            .iter()
            .enumerate()
            .map(|(index, text)| {
                let vector = embed_text(text, dimensions as usize);
                let embedding = if base64 {
                    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    Value::String(data_encoding::BASE64.encode(&bytes))
                } else {
                    Value::from(vector.iter().map(|x| f64::from(*x)).collect::<Vec<_>>())
                };
                Embedding { object: "embedding".to_owned(), index: index as u32, embedding }
            })
            .collect();
        Ok(EmbeddingList {
            object: "list".to_owned(),
            data,
            model: model.to_owned(),
            usage: EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens },
        })
    }
}

/// Tokens of a text as the dev provider counts them: `ceil(chars / 4)`.
pub fn count_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

fn prompt_tokens(messages: &[ChatMessage]) -> u64 {
    messages.iter().map(|m| 1 + count_tokens(&m.text())).sum()
}

fn answer(request: &ChatCompletionRequest) -> Answer {
    let Some(last) = request.messages.last() else {
        return text_answer(String::new(), request.max_output_tokens());
    };
    if last.role == "tool" {
        return text_answer(tool_results(&request.messages), request.max_output_tokens());
    }
    let text = last_user_text(&request.messages);
    let tools_allowed = request.tool_choice.as_ref().and_then(Value::as_str) != Some("none");
    if last.role == "user" && tools_allowed {
        if let Some(call) = tool_call(request, &text) {
            return Answer::Call(call);
        }
    }
    text_answer(format!("You said: {text}"), request.max_output_tokens())
}

fn text_answer(text: String, max_tokens: Option<u32>) -> Answer {
    match max_tokens {
        Some(max) if count_tokens(&text) > u64::from(max) => {
            let cut: String = text.chars().take(max as usize * 4).collect();
            Answer::Text { text: cut, finish_reason: "length" }
        }
        _ => Answer::Text { text, finish_reason: "stop" },
    }
}

fn last_user_text(messages: &[ChatMessage]) -> String {
    messages.iter().rev().find(|m| m.role == "user").map(ChatMessage::text).unwrap_or_default()
}

/// The first offered tool the text names, called with the text's first JSON object.
fn tool_call(request: &ChatCompletionRequest, text: &str) -> Option<ToolCall> {
    let tool = request.tools.as_ref()?.iter().find(|tool| text.contains(&tool.function.name))?;
    let arguments = first_json_object(text).unwrap_or_else(|| "{}".to_owned());
    let digest =
        Sha256::digest(format!("{}\u{0}{arguments}\u{0}{}", tool.function.name, request.messages.len()));
    let id = format!("call_{}", &data_encoding::HEXLOWER.encode(&digest)[..24]);
    Some(ToolCall {
        id,
        kind: "function".to_owned(),
        function: FunctionCall { name: tool.function.name.clone(), arguments },
    })
}

/// The first `{…}` in `text` that parses as a JSON object, re-serialised compactly.
fn first_json_object(text: &str) -> Option<String> {
    text.char_indices().filter(|(_, c)| *c == '{').find_map(|(start, _)| {
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(value @ Value::Object(_))) => Some(value.to_string()),
            _ => None,
        }
    })
}

/// `Tool results: name: content; …` for the trailing tool messages.
fn tool_results(messages: &[ChatMessage]) -> String {
    let calls: Vec<&ToolCall> = messages.iter().filter_map(|m| m.tool_calls.as_ref()).flatten().collect();
    let trailing = messages.iter().rev().take_while(|m| m.role == "tool").collect::<Vec<_>>();
    let parts: Vec<String> = trailing
        .into_iter()
        .rev()
        .map(|message| {
            let name = message
                .tool_call_id
                .as_ref()
                .and_then(|id| calls.iter().find(|call| &call.id == id))
                .map_or("tool", |call| call.function.name.as_str());
            format!("{name}: {}", message.text())
        })
        .collect();
    format!("Tool results: {}", parts.join("; "))
}

fn chunk(
    id: &str,
    created: i64,
    model: &str,
    delta: ChunkDelta,
    finish_reason: Option<&str>,
) -> ChatCompletionChunk {
    ChatCompletionChunk {
        id: id.to_owned(),
        object: "chat.completion.chunk".to_owned(),
        created,
        model: model.to_owned(),
        choices: vec![ChunkChoice { index: 0, delta, finish_reason: finish_reason.map(str::to_owned) }],
        usage: None,
    }
}

/// The chunks of a streamed answer: each of `choices` choices in turn (all
/// alike, each with its index), then the usage chunk.
fn stream_chunks(
    id: &str,
    created: i64,
    model: &str,
    answer: &Answer,
    choices: u32,
    usage: Usage,
) -> Vec<ChatCompletionChunk> {
    let first = choice_chunks(id, created, model, answer);
    let mut chunks = first.clone();
    for index in 1..choices {
        chunks.extend(first.iter().cloned().map(|mut chunk| {
            chunk.choices.iter_mut().for_each(|choice| choice.index = index);
            chunk
        }));
    }
    let mut last = chunk(id, created, model, ChunkDelta::default(), None);
    last.choices.clear();
    last.usage = Some(usage);
    chunks.push(last);
    chunks
}

/// One choice's chunks: the role, the answer in pieces, the finish reason.
fn choice_chunks(id: &str, created: i64, model: &str, answer: &Answer) -> Vec<ChatCompletionChunk> {
    let mut chunks = vec![chunk(
        id,
        created,
        model,
        ChunkDelta { role: Some("assistant".to_owned()), ..ChunkDelta::default() },
        None,
    )];
    let finish_reason = match answer {
        Answer::Text { text, finish_reason } => {
            for piece in text.split_inclusive(' ') {
                let delta = ChunkDelta { content: Some(piece.to_owned()), ..ChunkDelta::default() };
                chunks.push(chunk(id, created, model, delta, None));
            }
            *finish_reason
        }
        Answer::Call(call) => {
            let arguments = &call.function.arguments;
            let middle = arguments.char_indices().nth(arguments.chars().count() / 2).map_or(0, |(at, _)| at);
            let pieces = [
                ToolCallDelta {
                    index: 0,
                    id: Some(call.id.clone()),
                    kind: Some("function".to_owned()),
                    function: Some(FunctionCallDelta {
                        name: Some(call.function.name.clone()),
                        arguments: Some(String::new()),
                    }),
                },
                ToolCallDelta {
                    index: 0,
                    function: Some(FunctionCallDelta {
                        name: None,
                        arguments: Some(arguments[..middle].to_owned()),
                    }),
                    ..ToolCallDelta::default()
                },
                ToolCallDelta {
                    index: 0,
                    function: Some(FunctionCallDelta {
                        name: None,
                        arguments: Some(arguments[middle..].to_owned()),
                    }),
                    ..ToolCallDelta::default()
                },
            ];
            for piece in pieces {
                let delta = ChunkDelta { tool_calls: Some(vec![piece]), ..ChunkDelta::default() };
                chunks.push(chunk(id, created, model, delta, None));
            }
            "tool_calls"
        }
    };
    chunks.push(chunk(id, created, model, ChunkDelta::default(), Some(finish_reason)));
    chunks
}

/// Token ids as the words the dev provider embeds: `t<id>` each, so equal
/// id sequences get equal vectors.
fn token_words(ids: &[u32]) -> String {
    ids.iter().map(|id| format!("t{id}")).collect::<Vec<_>>().join(" ")
}

/// A hashed bag of lowercased words, scaled to unit length.
pub fn embed_text(text: &str, dimensions: usize) -> Vec<f32> {
    let mut vector = vec![0f32; dimensions];
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let digest = Sha256::digest(word.to_lowercase().as_bytes());
        let slot = u64::from_le_bytes([
            digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
        ]);
        let sign = if digest[8] & 1 == 0 { 1.0 } else { -1.0 };
        vector[(slot % dimensions as u64) as usize] += sign;
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{FunctionDefinition, Tool};

    fn user(text: &str) -> ChatMessage {
        ChatMessage { role: "user".to_owned(), content: Some(Value::from(text)), ..ChatMessage::default() }
    }

    fn weather_tool() -> Tool {
        Tool {
            kind: "function".to_owned(),
            function: FunctionDefinition { name: "get_weather".to_owned(), ..FunctionDefinition::default() },
        }
    }

    #[test]
    fn answers_with_the_last_user_message() {
        let request = ChatCompletionRequest { messages: vec![user("hello there")], ..Default::default() };
        assert_eq!(
            answer(&request),
            Answer::Text { text: "You said: hello there".to_owned(), finish_reason: "stop" }
        );
    }

    #[test]
    fn calls_a_named_tool_with_the_json_arguments() {
        let request = ChatCompletionRequest {
            messages: vec![user(r#"please get_weather {"city": "Paris"} now"#)],
            tools: Some(vec![weather_tool()]),
            ..Default::default()
        };
        let Answer::Call(call) = answer(&request) else { panic!("expected a tool call") };
        assert_eq!(call.function.name, "get_weather");
        assert_eq!(call.function.arguments, r#"{"city":"Paris"}"#);
        assert_eq!(Answer::Call(call.clone()), answer(&request), "deterministic");

        let none = ChatCompletionRequest { tool_choice: Some(Value::from("none")), ..request };
        assert!(matches!(answer(&none), Answer::Text { .. }));
    }

    #[test]
    fn answers_tool_results_with_their_content() {
        let call = ToolCall {
            id: "call_1".to_owned(),
            kind: "function".to_owned(),
            function: FunctionCall { name: "get_weather".to_owned(), arguments: "{}".to_owned() },
        };
        let messages = vec![
            user("get_weather"),
            ChatMessage {
                role: "assistant".to_owned(),
                tool_calls: Some(vec![call]),
                ..ChatMessage::default()
            },
            ChatMessage {
                role: "tool".to_owned(),
                tool_call_id: Some("call_1".to_owned()),
                content: Some(Value::from("sunny, 21C")),
                ..ChatMessage::default()
            },
        ];
        let request =
            ChatCompletionRequest { messages, tools: Some(vec![weather_tool()]), ..Default::default() };
        assert_eq!(
            answer(&request),
            Answer::Text { text: "Tool results: get_weather: sunny, 21C".to_owned(), finish_reason: "stop" }
        );
    }

    #[test]
    fn max_tokens_cuts_the_answer() {
        let request = ChatCompletionRequest {
            messages: vec![user("a long message indeed")],
            max_tokens: Some(2),
            ..Default::default()
        };
        assert_eq!(answer(&request), Answer::Text { text: "You said".to_owned(), finish_reason: "length" });
    }

    #[test]
    fn embeddings_are_unit_length_and_deterministic() {
        let a = embed_text("The cat sat", 64);
        assert_eq!(a, embed_text("the CAT sat!", 64));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        let b = embed_text("a dog ran", 64);
        let close: f32 = a.iter().zip(embed_text("the cat", 64)).map(|(x, y)| x * y).sum();
        let far: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!(close > far, "{close} vs {far}");
        assert!(embed_text("", 8).iter().all(|x| *x == 0.0));
    }

    #[test]
    fn n_answers_that_many_alike_choices() {
        let request =
            ChatCompletionRequest { messages: vec![user("hello")], n: Some(3), ..Default::default() };
        let Ok(Reply::Complete { body, usage }) = Dev::default().chat(&request, "dev") else {
            panic!("not a complete answer")
        };
        let completion: ChatCompletion = serde_json::from_slice(&body).unwrap();
        let indexes: Vec<u32> = completion.choices.iter().map(|choice| choice.index).collect();
        assert_eq!(indexes, [0, 1, 2]);
        assert!(completion.choices.iter().all(|c| c.message.content.as_deref() == Some("You said: hello")));
        let one = ChatCompletionRequest { n: None, ..request.clone() };
        let Ok(Reply::Complete { usage: Some(single), .. }) = Dev::default().chat(&one, "dev") else {
            panic!("not a complete answer with usage")
        };
        let usage = usage.unwrap();
        assert_eq!(usage.completion_tokens, 3 * single.completion_tokens);

        let answer = answer(&request);
        let chunks = stream_chunks("id", 0, "dev", &answer, 3, usage);
        let per_choice = choice_chunks("id", 0, "dev", &answer).len();
        assert_eq!(chunks.len(), 3 * per_choice + 1);
        for (at, chunk) in chunks[..3 * per_choice].iter().enumerate() {
            assert_eq!(chunk.choices[0].index as usize, at / per_choice, "chunk {at}");
        }
        assert!(chunks[3 * per_choice].choices.is_empty() && chunks[3 * per_choice].usage.is_some());
    }

    #[test]
    fn token_ids_embed_like_their_words() {
        let tokens = EmbeddingRequest { input: serde_json::json!([[7, 8], [7]]), ..Default::default() };
        let Ok(list) = Dev::default().embed(&tokens, "dev") else { panic!("token ids were refused") };
        assert_eq!(list.usage.prompt_tokens, 3);
        let words = EmbeddingRequest { input: serde_json::json!("t7 t8"), ..Default::default() };
        let Ok(same) = Dev::default().embed(&words, "dev") else { panic!("text was refused") };
        assert_eq!(list.data[0].embedding, same.data[0].embedding);
    }
}

//! OpenAI's wire format for chat completions, models and embeddings. The
//! same types parse requests (serde, once), describe them in the spec
//! (poem-openapi), and carry what providers answer.
//!
//! Requests keep fields they do not name in `extra`; `fields` decides which
//! of them a provider receives.

use poem_openapi::Object;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most messages one request may carry.
pub const MAX_MESSAGES: usize = 100;
/// Most characters of content one message may carry.
pub const MAX_CONTENT_CHARS: usize = 100_000;

/// `POST /v1/chat/completions`. Of the fields not listed here, the ones
/// known not to change the price, and those the operator lets through, go to
/// OpenAI-compatible providers unchanged; others are refused
/// (`gateway.unsupported_parameter`).
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    /// A route name this key may use, as `GET /v1/models` lists them.
    pub model: String,
    /// The conversation so far: 1 to 100 messages.
    #[oai(validator(min_items = 1, max_items = 100))]
    pub messages: Vec<ChatMessage>,
    /// Answer as server-sent `chat.completion.chunk` events ending with `data: [DONE]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// A string or up to 4 strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Value>,
    /// How many answers: 1 to 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// The end user, for the provider's abuse monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// `none`, `auto`, `required`, or `{"type": "function", "function": {"name": …}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// `{"type": "text" | "json_object" | "json_schema", …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    #[serde(flatten)]
    #[oai(skip)]
    pub extra: Map<String, Value>,
}

impl ChatCompletionRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether the client asked for the final usage chunk of a stream.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.include_usage).unwrap_or(false)
    }

    /// The completion budget the client set, under either name.
    pub fn max_output_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with empty `choices` and the request's `usage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    #[oai(skip)]
    pub extra: Map<String, Value>,
}

/// One message of the conversation.
#[derive(Debug, Clone, Default, PartialEq, Object, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// A string, an array of content parts (`{"type": "text", "text": …}`,
    /// `{"type": "image_url", …}`), or null for an assistant message that
    /// only calls tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The tool calls an assistant message made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// On a `tool` message: the call this is the result of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(flatten)]
    #[oai(skip)]
    pub extra: Map<String, Value>,
}

impl ChatMessage {
    /// The message's text: the string content, or its text parts joined.
    pub fn text(&self) -> String {
        match &self.content {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        }
    }

    /// Characters of text content, counted as the limit counts them.
    pub fn content_chars(&self) -> usize {
        match &self.content {
            Some(Value::String(text)) => text.chars().count(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .map(|text| text.chars().count())
                .sum(),
            _ => 0,
        }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, Default, PartialEq, Object, Serialize, Deserialize)]
pub struct Tool {
    /// Always `function`.
    #[serde(rename = "type")]
    #[oai(rename = "type")]
    pub kind: String,
    pub function: FunctionDefinition,
}

#[derive(Debug, Clone, Default, PartialEq, Object, Serialize, Deserialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema object for the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// A call the model made to one of the offered tools.
#[derive(Debug, Clone, Default, PartialEq, Object, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    #[oai(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, Default, PartialEq, Object, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// The arguments as a JSON text.
    pub arguments: String,
}

/// A non-streamed answer.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    /// `stop`, `length`, `tool_calls` or `content_filter`.
    #[oai(nullable)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Object, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: String,
    #[oai(nullable)]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// Tokens one request used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Object, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens }
    }
}

/// One event of a streamed chat answer, as the event stream carries it: its
/// `data` is a `ChatCompletionChunk` as JSON, and the last event's is
/// `[DONE]`. Comment lines (`: keep-alive`) are not events. Documents the
/// `text/event-stream` answer; the server writes the stream itself.
#[derive(Debug, Clone, Default, Object)]
pub struct ChatCompletionStreamEvent {
    /// A `ChatCompletionChunk` as JSON, or `[DONE]` at the end of the stream.
    pub data: String,
}

/// One server-sent event of a streamed answer.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    pub created: i64,
    pub model: String,
    /// Empty on the last chunk when `stream_options.include_usage` is set.
    pub choices: Vec<ChunkChoice>,
    /// Only on the last chunk, when `stream_options.include_usage` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: ChunkDelta,
    #[oai(nullable)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Object, Serialize, Deserialize)]
pub struct ChunkDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A piece of a streamed tool call: the first piece of a call carries its
/// `id`, `type` and `function.name`; later pieces append to `arguments`.
#[derive(Debug, Clone, Default, PartialEq, Object, Serialize, Deserialize)]
pub struct ToolCallDelta {
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[oai(rename = "type")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
}

#[derive(Debug, Clone, Default, PartialEq, Object, Serialize, Deserialize)]
pub struct FunctionCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// `POST /v1/embeddings`.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    /// A string, an array of 1 to 2,048 strings, or token ids: an array of
    /// integers, or an array of 1 to 2,048 such arrays.
    pub input: Value,
    /// `float` (the default) or `base64` (little-endian f32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(flatten)]
    #[oai(skip)]
    pub extra: Map<String, Value>,
}

/// Most inputs one embeddings request may carry.
pub const MAX_EMBEDDING_INPUTS: usize = 2_048;

/// What an embeddings request's `input` holds, in one of the shapes OpenAI
/// accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbeddingInputs {
    Texts(Vec<String>),
    /// Token ids, one array per input.
    Tokens(Vec<Vec<u32>>),
}

impl EmbeddingInputs {
    /// Reads `input`, or says what shape it must have. Every input is
    /// non-empty and there are 1 to [`MAX_EMBEDDING_INPUTS`] of them.
    pub fn parse(input: &Value) -> Result<Self, String> {
        let shape = || {
            format!(
                "`input` must be a string, an array of 1 to {MAX_EMBEDDING_INPUTS} strings, \
                 or token ids (an array of integers, or of such arrays)"
            )
        };
        let inputs = match input {
            Value::String(text) => Self::Texts(vec![text.clone()]),
            Value::Array(items) if items.first().is_some_and(Value::is_string) => Self::Texts(
                items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or_else(shape)?,
            ),
            Value::Array(items) if items.first().is_some_and(Value::is_number) => {
                Self::Tokens(vec![token_ids(items).ok_or_else(shape)?])
            }
            Value::Array(items) if items.first().is_some_and(Value::is_array) => Self::Tokens(
                items
                    .iter()
                    .map(|item| item.as_array().and_then(|ids| token_ids(ids)))
                    .collect::<Option<_>>()
                    .ok_or_else(shape)?,
            ),
            _ => return Err(shape()),
        };
        let (count, any_empty) = match &inputs {
            Self::Texts(texts) => (texts.len(), false),
            Self::Tokens(arrays) => (arrays.len(), arrays.iter().any(Vec::is_empty)),
        };
        if count == 0 || count > MAX_EMBEDDING_INPUTS || any_empty {
            return Err(shape());
        }
        Ok(inputs)
    }
}

/// An array of token ids, or `None` when an item is not one.
fn token_ids(items: &[Value]) -> Option<Vec<u32>> {
    items.iter().map(|item| item.as_u64().and_then(|id| u32::try_from(id).ok())).collect()
}

/// The answer of `POST /v1/embeddings`.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
pub struct EmbeddingList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
    /// Some OpenAI-compatible servers leave it out; the gateway then counts
    /// the inputs itself.
    #[serde(default)]
    pub usage: EmbeddingUsage,
}

#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
pub struct Embedding {
    /// Always `embedding`.
    pub object: String,
    pub index: u32,
    /// An array of numbers, or a base64 string with `encoding_format: base64`.
    pub embedding: Value,
}

#[derive(Debug, Clone, Copy, Default, Object, Serialize, Deserialize)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

/// A model (route) a key may use.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
pub struct Model {
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Unix seconds; when this server started serving the route.
    pub created: i64,
    pub owned_by: String,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<Model>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{EmbeddingInputs, MAX_EMBEDDING_INPUTS};

    #[test]
    fn embedding_input_takes_every_shape_openai_does() {
        let texts = |items: &[&str]| EmbeddingInputs::Texts(items.iter().map(|t| (*t).to_owned()).collect());
        assert_eq!(EmbeddingInputs::parse(&json!("hi")), Ok(texts(&["hi"])));
        assert_eq!(EmbeddingInputs::parse(&json!(["a", "b"])), Ok(texts(&["a", "b"])));
        assert_eq!(
            EmbeddingInputs::parse(&json!([1, 2, 3])),
            Ok(EmbeddingInputs::Tokens(vec![vec![1, 2, 3]]))
        );
        assert_eq!(
            EmbeddingInputs::parse(&json!([[1, 2], [3]])),
            Ok(EmbeddingInputs::Tokens(vec![vec![1, 2], vec![3]]))
        );
    }

    #[test]
    fn embedding_input_refuses_mixed_empty_and_oversized_shapes() {
        let too_many = vec!["x"; MAX_EMBEDDING_INPUTS + 1];
        for bad in [
            json!(42),
            json!(null),
            json!([]),
            json!(["a", 1]),
            json!([1, "a"]),
            json!([[1], "a"]),
            json!([[]]),
            json!([-1]),
            json!([1.5]),
            json!([4_294_967_296_u64]),
            json!(too_many),
        ] {
            assert!(EmbeddingInputs::parse(&bad).is_err(), "{bad} was accepted");
        }
    }
}

//! Counting tokens when a provider reports none, so no answer is ever free:
//! a real BPE tokenizer (OpenAI's `o200k_base` unless the route names
//! another) over the request as it goes upstream, and over the output the
//! answer actually produced — whole, cut short by the client, or failed
//! mid-way.
//!
//! Chat prompts are counted by OpenAI's published rule: three tokens of
//! framing per message and one more for a name, three to prime the reply,
//! tool definitions as their JSON, images by the provider's rule. The same
//! walk over a request, with a cheaper measure of text, gives the estimate a
//! request reserves before it runs (the server's `gateway::metering::Estimate`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tiktoken_rs::CoreBPE;

use crate::wire::{ChatCompletionRequest, EmbeddingInputs, EmbeddingRequest};

/// The BPE vocabulary a route's answers are counted with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tokenizer {
    /// GPT-4o, GPT-4.1, GPT-5 and the o-series; the default.
    #[default]
    #[serde(rename = "o200k_base")]
    O200kBase,
    /// GPT-4, GPT-3.5 and most models fine-tuned from their vocabulary.
    #[serde(rename = "cl100k_base")]
    Cl100kBase,
    #[serde(rename = "p50k_base")]
    P50kBase,
    #[serde(rename = "r50k_base")]
    R50kBase,
}

impl Tokenizer {
    /// The vocabulary, loaded on first use (tens of milliseconds, about
    /// 45 MB for `o200k_base`): a server whose providers report usage never
    /// loads it.
    fn bpe(self) -> &'static CoreBPE {
        match self {
            Self::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Self::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
            Self::P50kBase => tiktoken_rs::p50k_base_singleton(),
            Self::R50kBase => tiktoken_rs::r50k_base_singleton(),
        }
    }

    /// Tokens of `text` as ordinary text (special tokens count as text).
    pub fn count(self, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        self.bpe().encode_ordinary(text).len() as u64
    }
}

/// What one image of a prompt counts as, by the provider's rule. An image's
/// size is not known without decoding it, so each counts as the largest
/// image the provider accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRule {
    /// 85 tokens with `detail: low`; otherwise 85 plus 170 per 512-pixel
    /// tile, at most 8 tiles (768 × 2048 after OpenAI's scaling).
    OpenAi,
    /// width × height / 750, at most about 1,600 (1.15 megapixels).
    Anthropic,
    /// The provider reads no images (the built-in `dev` one).
    None,
}

impl ImageRule {
    pub fn tokens(self, detail_low: bool) -> u64 {
        match self {
            Self::OpenAi if detail_low => 85,
            Self::OpenAi => 85 + 170 * 8,
            Self::Anthropic => 1_600,
            Self::None => 0,
        }
    }
}

/// One input of a chat request that costs tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PromptPiece<'a> {
    /// The start of a message (its framing), with its role.
    Message { role: &'a str },
    /// Text the model reads: content, names, tool-call names, arguments and ids.
    Text(&'a str),
    /// An image part.
    Image { detail_low: bool },
    /// A tool definition or a content part of another kind, read as its JSON.
    Json(&'a Value),
}

/// Calls `visit` with every input of `request` that costs tokens.
pub fn prompt_pieces<'a>(request: &'a ChatCompletionRequest, mut visit: impl FnMut(PromptPiece<'a>)) {
    for message in &request.messages {
        visit(PromptPiece::Message { role: &message.role });
        if let Some(name) = &message.name {
            visit(PromptPiece::Text(name));
        }
        match &message.content {
            Some(Value::String(text)) => visit(PromptPiece::Text(text)),
            Some(Value::Array(parts)) => parts.iter().for_each(|part| content_part(part, &mut visit)),
            Some(other @ (Value::Object(_) | Value::Number(_) | Value::Bool(_))) => {
                visit(PromptPiece::Json(other))
            }
            Some(Value::Null) | None => {}
        }
        for call in message.tool_calls.iter().flatten() {
            visit(PromptPiece::Text(&call.id));
            visit(PromptPiece::Text(&call.function.name));
            visit(PromptPiece::Text(&call.function.arguments));
        }
        if let Some(id) = &message.tool_call_id {
            visit(PromptPiece::Text(id));
        }
    }
    for tool in request.tools.iter().flatten() {
        visit(PromptPiece::Text(&tool.function.name));
        if let Some(description) = &tool.function.description {
            visit(PromptPiece::Text(description));
        }
        if let Some(parameters) = &tool.function.parameters {
            visit(PromptPiece::Json(parameters));
        }
    }
}

fn content_part<'a>(part: &'a Value, visit: &mut impl FnMut(PromptPiece<'a>)) {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => {
            if let Some(text) = part.get("text").and_then(Value::as_str) {
                visit(PromptPiece::Text(text));
            }
        }
        Some("image_url") => {
            let detail = part.pointer("/image_url/detail").and_then(Value::as_str);
            visit(PromptPiece::Image { detail_low: detail == Some("low") });
        }
        _ => visit(PromptPiece::Json(part)),
    }
}

/// Framing OpenAI adds per message, for a name, and to prime the reply.
const MESSAGE_TOKENS: u64 = 3;
const NAME_TOKENS: u64 = 1;
const REPLY_PRIMING_TOKENS: u64 = 3;

/// The prompt tokens of a chat request as it goes upstream.
pub fn chat_prompt_tokens(request: &ChatCompletionRequest, tokenizer: Tokenizer, images: ImageRule) -> u64 {
    let mut tokens = REPLY_PRIMING_TOKENS;
    prompt_pieces(request, |piece| {
        tokens += match piece {
            PromptPiece::Message { role } => MESSAGE_TOKENS + tokenizer.count(role),
            PromptPiece::Text(text) => tokenizer.count(text),
            PromptPiece::Image { detail_low } => images.tokens(detail_low),
            PromptPiece::Json(value) => tokenizer.count(&value.to_string()),
        };
    });
    tokens += request.messages.iter().filter(|message| message.name.is_some()).count() as u64 * NAME_TOKENS;
    tokens
}

/// The tokens of an embeddings request's inputs: token ids as they are, texts
/// through the tokenizer.
pub fn embedding_input_tokens(request: &EmbeddingRequest, tokenizer: Tokenizer) -> u64 {
    match EmbeddingInputs::parse(&request.input) {
        Ok(EmbeddingInputs::Texts(texts)) => texts.iter().map(|text| tokenizer.count(text)).sum(),
        Ok(EmbeddingInputs::Tokens(arrays)) => arrays.iter().map(|ids| ids.len() as u64).sum(),
        Err(_) => 0,
    }
}

/// The chunk fields a synthesised usage chunk repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHead {
    pub id: String,
    pub created: i64,
    pub model: String,
}

/// The output an answer produced, gathered as it passes: text, refusals and
/// tool calls of every choice.
#[derive(Debug, Default)]
pub struct OutputTally {
    text: String,
    /// The first chunk's `id`, `created` and `model`.
    head: Option<StreamHead>,
}

impl OutputTally {
    /// Adds what one `chat.completion.chunk` produced; whether it produced
    /// anything (content, a refusal or a piece of a tool call).
    pub fn add_chunk(&mut self, data: &[u8]) -> bool {
        let Ok(chunk) = serde_json::from_slice::<probe::Chunk<'_>>(data) else { return false };
        if self.head.is_none() {
            self.head = Some(StreamHead {
                id: chunk.id.unwrap_or_default().into_owned(),
                created: chunk.created.unwrap_or_default(),
                model: chunk.model.unwrap_or_default().into_owned(),
            });
        }
        let before = self.text.len();
        for delta in chunk.choices.into_iter().flatten().filter_map(|choice| choice.delta) {
            self.add_message(delta);
        }
        self.text.len() > before
    }

    /// Adds what a whole `chat.completion` produced.
    pub fn add_completion(&mut self, body: &[u8]) {
        let Ok(completion) = serde_json::from_slice::<probe::Completion<'_>>(body) else { return };
        for message in completion.choices.into_iter().flatten().filter_map(|choice| choice.message) {
            self.add_message(message);
        }
    }

    fn add_message(&mut self, message: probe::Message<'_>) {
        for text in [message.content, message.refusal].into_iter().flatten() {
            self.text.push_str(&text);
        }
        for call in message.tool_calls.into_iter().flatten() {
            let function = call.function.unwrap_or_default();
            for text in [function.name, function.arguments].into_iter().flatten() {
                self.text.push_str(&text);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn head(&self) -> Option<&StreamHead> {
        self.head.as_ref()
    }

    pub fn tokens(&self, tokenizer: Tokenizer) -> u64 {
        tokenizer.count(&self.text)
    }
}

/// The parts of chunks and completions the tally reads, borrowed where the
/// JSON allows.
mod probe {
    use std::borrow::Cow;

    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Chunk<'a> {
        #[serde(default, borrow)]
        pub id: Option<Cow<'a, str>>,
        #[serde(default)]
        pub created: Option<i64>,
        #[serde(default, borrow)]
        pub model: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub choices: Option<Vec<ChunkChoice<'a>>>,
    }

    #[derive(Deserialize)]
    pub struct ChunkChoice<'a> {
        #[serde(default, borrow)]
        pub delta: Option<Message<'a>>,
    }

    #[derive(Deserialize)]
    pub struct Completion<'a> {
        #[serde(default, borrow)]
        pub choices: Option<Vec<CompletionChoice<'a>>>,
    }

    #[derive(Deserialize)]
    pub struct CompletionChoice<'a> {
        #[serde(default, borrow)]
        pub message: Option<Message<'a>>,
    }

    /// A delta or a whole message.
    #[derive(Deserialize)]
    pub struct Message<'a> {
        #[serde(default, borrow)]
        pub content: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub refusal: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub tool_calls: Option<Vec<ToolCall<'a>>>,
    }

    #[derive(Deserialize)]
    pub struct ToolCall<'a> {
        #[serde(default, borrow)]
        pub function: Option<Function<'a>>,
    }

    #[derive(Default, Deserialize)]
    pub struct Function<'a> {
        #[serde(default, borrow)]
        pub name: Option<Cow<'a, str>>,
        #[serde(default, borrow)]
        pub arguments: Option<Cow<'a, str>>,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(value: Value) -> ChatCompletionRequest {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn o200k_counts_as_openai_does() {
        // Counts from OpenAI's tokenizer for these strings.
        assert_eq!(Tokenizer::O200kBase.count("Hello, world!"), 4);
        assert_eq!(Tokenizer::Cl100kBase.count("Hello, world!"), 4);
        assert_eq!(Tokenizer::O200kBase.count(""), 0);
        assert!(Tokenizer::O200kBase.count(&"token ".repeat(1000)) >= 1000);
    }

    #[test]
    fn chat_prompts_count_framing_names_tools_arguments_and_images() {
        let plain = request(json!({"model": "m", "messages": [{"role": "user", "content": "Hello"}]}));
        // 3 priming + 3 framing + "user" (1) + "Hello" (1).
        assert_eq!(chat_prompt_tokens(&plain, Tokenizer::O200kBase, ImageRule::OpenAi), 8);

        let tools = request(json!({
            "model": "m",
            "messages": [
                {"role": "user", "name": "ada", "content": "Hello"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "lookup", "arguments": "{\"query\": \"the weather in Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "user", "content": [
                    {"type": "text", "text": "and this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}}
                ]}
            ],
            "tools": [{"type": "function", "function": {"name": "lookup", "description": "Looks things up",
                "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]
        }));
        let counted = chat_prompt_tokens(&tools, Tokenizer::O200kBase, ImageRule::OpenAi);
        let images = 85 + 1445;
        assert!(counted > images + 40, "{counted}");
        let without_images = chat_prompt_tokens(&tools, Tokenizer::O200kBase, ImageRule::None);
        assert_eq!(counted - without_images, images);
    }

    #[test]
    fn embedding_inputs_count_texts_and_token_ids() {
        let texts: EmbeddingRequest =
            serde_json::from_value(json!({"model": "m", "input": ["Hello, world!", "Hello"]}))
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(embedding_input_tokens(&texts, Tokenizer::O200kBase), 5);
        let ids: EmbeddingRequest = serde_json::from_value(json!({"model": "m", "input": [[1, 2, 3], [4]]}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(embedding_input_tokens(&ids, Tokenizer::O200kBase), 4);
    }

    #[test]
    fn the_tally_gathers_text_refusals_and_tool_calls_of_every_choice() {
        let mut tally = OutputTally::default();
        assert!(!tally.add_chunk(br#"{"id":"c1","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#));
        assert!(tally.add_chunk(br#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hello"}},{"index":1,"delta":{"refusal":"No"}}]}"#));
        assert!(tally.add_chunk(br#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\""}}]}}]}"#));
        assert!(!tally.add_chunk(
            br#"{"id":"c1","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#
        ));
        assert!(!tally.add_chunk(b"not json"));
        assert_eq!(tally.head(), Some(&StreamHead { id: "c1".into(), created: 7, model: "m".into() }));
        assert_eq!(tally.text, "HelloNof{\"a\"");

        let mut whole = OutputTally::default();
        whole.add_completion(br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi there","tool_calls":[{"id":"x","type":"function","function":{"name":"g","arguments":"{}"}}]}}]}"#);
        assert_eq!(whole.text, "Hi thereg{}");
        assert_eq!(whole.tokens(Tokenizer::O200kBase), Tokenizer::O200kBase.count("Hi thereg{}"));
    }
}

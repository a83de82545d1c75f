//! Answers, Anthropic → OpenAI: a whole message, as `POST /v1/messages`
//! answers without streaming, becomes a `chat.completion`. Its content
//! blocks, token counts and stop reasons are read here for streams too.

use serde::Deserialize;
use serde_json::Value;

use crate::wire::{AssistantMessage, ChatChoice, ChatCompletion, FunctionCall, ToolCall, Usage};

/// A whole message, as `POST /v1/messages` answers without streaming.
#[derive(Debug, Deserialize)]
pub(super) struct MessagesResponse {
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
pub(super) enum ResponseBlock {
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
pub(super) struct AnthropicUsage {
    pub(super) input_tokens: Option<u64>,
    pub(super) cache_creation_input_tokens: Option<u64>,
    pub(super) cache_read_input_tokens: Option<u64>,
    pub(super) output_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Takes the counts a later report has, keeping the others.
    pub(super) fn update(&mut self, later: Self) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.cache_creation_input_tokens =
            later.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later.cache_read_input_tokens.or(self.cache_read_input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
    }

    /// OpenAI counts cached prompt tokens as prompt tokens; Anthropic apart.
    pub(super) fn to_openai(self) -> Usage {
        let prompt = [self.input_tokens, self.cache_read_input_tokens, self.cache_creation_input_tokens];
        Usage::new(prompt.into_iter().flatten().sum(), self.output_tokens.unwrap_or(0))
    }
}

pub(super) fn finish_reason(stop_reason: Option<&str>) -> String {
    let reason = match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        _ => "stop",
    };
    reason.to_owned()
}

pub(super) fn chat_completion(message: MessagesResponse, created: i64) -> ChatCompletion {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::anthropic::testing::{CREATED, MESSAGE_TEXT, MESSAGE_TOOL_USE, MODEL};

    fn completion(fixture: &str) -> Value {
        let message: MessagesResponse = serde_json::from_str(fixture).unwrap_or_else(|e| panic!("{e}"));
        serde_json::to_value(chat_completion(message, CREATED)).unwrap_or_else(|e| panic!("{e}"))
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
}

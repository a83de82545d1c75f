//! Shortcuts for building gateway requests: the generated types spell out
//! every optional field, most of which a simple call leaves unset.

use crate::types::{ChatCompletionRequest, ChatMessage};

impl ChatMessage {
    /// A message with `role` and text `content`.
    pub fn text(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_owned(),
            content: Some(serde_json::Value::String(content.into())),
            name: None,
            tool_call_id: None,
            tool_calls: Vec::new(),
        }
    }
}

impl ChatCompletionRequest {
    /// A request for `model` with `messages` and every option unset.
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        Self {
            model: model.into(),
            messages,
            max_completion_tokens: None,
            max_tokens: None,
            n: None,
            response_format: None,
            seed: None,
            stop: None,
            stream: None,
            stream_options: None,
            temperature: None,
            tool_choice: None,
            tools: Vec::new(),
            top_p: None,
            user: None,
        }
    }
}

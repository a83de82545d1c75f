//! The gateway's part of the configuration file: `[providers.<name>]`,
//! `[[routes]]`, `[prices."<model>"]` and the `[gateway]` timeouts.

use serde::{Deserialize, Serialize};
use switchyard_providers::tokens::Tokenizer;

/// `[providers.<name>]`: where one upstream is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Required for `openai` (for example `https://api.openai.com/v1`);
    /// `anthropic` defaults to `https://api.anthropic.com/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The name of the environment variable holding the provider's key.
    /// Keys never go in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Request fields this provider may receive beyond the ones known not
    /// to change the price (for example `["service_tier"]`, or an
    /// aggregator's `["provider"]`). Others are refused with 400
    /// `gateway.unsupported_parameter`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_through: Vec<String>,
    /// `dev` only: hold each chat answer back this many milliseconds, to
    /// stand in for a slow model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible API: OpenAI, OpenRouter, vLLM, llama.cpp, Ollama.
    Openai,
    /// Anthropic's Messages API, translated both ways.
    Anthropic,
    /// Built in: deterministic answers and embeddings, no network.
    Dev,
}

/// `[[routes]]`: a model name clients send and the targets that serve it, in
/// order of preference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    pub targets: Vec<TargetConfig>,
    /// What counts the route's tokens when a provider reports no usage:
    /// `o200k_base` (the default), `cl100k_base`, `p50k_base` or `r50k_base`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<Tokenizer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// A key of `[providers]`.
    pub provider: String,
    /// The model name the provider knows.
    pub model: String,
}

/// `[prices."<upstream model>"]`: USD per million tokens, as decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    pub input_per_mtok: String,
    pub output_per_mtok: String,
}

/// `[gateway]`: timeouts and retries for upstream calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Opening a connection to a provider.
    pub connect_timeout_ms: u64,
    /// From sending the request to the response head (and, for streams, to
    /// the first event).
    pub first_byte_timeout_ms: u64,
    /// Longest pause between two reads of a response body.
    pub idle_timeout_ms: u64,
    /// The whole upstream call, all fallbacks included.
    pub total_timeout_ms: u64,
    /// Base of the exponential backoff (with jitter) before trying the next target.
    pub retry_backoff_ms: u64,
    /// While a stream waits on its provider, a `: keep-alive` comment goes to
    /// the client this often; it also reveals a client that went away, so the
    /// provider's request is cancelled.
    pub stream_keepalive_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            first_byte_timeout_ms: 60_000,
            idle_timeout_ms: 60_000,
            total_timeout_ms: 600_000,
            retry_backoff_ms: 100,
            stream_keepalive_ms: 15_000,
        }
    }
}

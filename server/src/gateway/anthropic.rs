//! Anthropic's Messages API, translated to and from OpenAI's chat format.

use tokio::time::Instant;

use super::upstream::UpstreamError;
use super::wire::ChatCompletionRequest;
use super::{Reply, Timeouts};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com/v1";

pub struct Anthropic {
    #[allow(dead_code)]
    client: reqwest::Client,
    #[allow(dead_code)]
    base_url: String,
    #[allow(dead_code)]
    api_key: Option<String>,
}

impl Anthropic {
    pub fn new(client: reqwest::Client, base_url: String, api_key: Option<String>) -> Self {
        Self { client, base_url, api_key }
    }

    pub async fn chat(
        &self,
        _request: &ChatCompletionRequest,
        _model: &str,
        _timeouts: &Timeouts,
        _deadline: Instant,
    ) -> Result<Reply, UpstreamError> {
        Err(UpstreamError::Unsupported("not yet"))
    }
}

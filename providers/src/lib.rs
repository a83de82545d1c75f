//! The model providers: the code that talks to upstream model APIs, one
//! [`Provider`] per configured upstream — OpenAI-compatible APIs (`openai`),
//! Anthropic's Messages API translated both ways (`anthropic`), and the
//! built-in `dev` — all answering in OpenAI's wire format (`wire`). Beside
//! them: HTTP with timeouts and server-sent events (`upstream`), which request
//! fields may reach a provider (`fields`), prices (`price`), and counting
//! tokens when a provider reports none (`tokens`).
//!
//! Routing with fallbacks, metering and configuration are the server's
//! gateway; it builds the providers and calls them.

pub mod anthropic;
pub mod dev;
pub mod fields;
pub mod openai;
pub mod price;
mod reply;
pub mod tokens;
pub mod upstream;
pub mod wire;

use std::time::Duration;

use tokio::time::Instant;

pub use crate::price::Price;
pub use crate::reply::{ChunkEvent, EventStream, Reply};
use crate::tokens::ImageRule;
pub use crate::upstream::UpstreamError;
use crate::wire::{ChatCompletionRequest, EmbeddingList, EmbeddingRequest};

/// How long upstream calls may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
    pub backoff: Duration,
    pub keepalive: Duration,
}

/// One upstream.
pub enum Provider {
    Dev(dev::Dev),
    OpenAi(openai::OpenAi),
    Anthropic(anthropic::Anthropic),
}

impl Provider {
    /// Sends a chat request to `model` at this provider.
    pub async fn chat(
        &self,
        request: &ChatCompletionRequest,
        model: &str,
        timeouts: &Timeouts,
        deadline: Instant,
    ) -> Result<Reply, UpstreamError> {
        match self {
            Self::Dev(dev) => {
                if !dev.delay.is_zero() {
                    tokio::time::sleep(dev.delay).await;
                }
                dev.chat(request, model)
            }
            Self::OpenAi(openai) => openai.chat(request, model, timeouts, deadline).await,
            Self::Anthropic(anthropic) => anthropic.chat(request, model, timeouts, deadline).await,
        }
    }

    /// Whether the operator lets `field` through to this provider.
    pub fn passes_through(&self, field: &str) -> bool {
        let allowed = match self {
            Self::Dev(_) => return false,
            Self::OpenAi(openai) => openai.pass_through(),
            Self::Anthropic(anthropic) => anthropic.pass_through(),
        };
        allowed.iter().any(|name| name == field)
    }

    /// How the provider counts an image of a prompt.
    pub fn image_rule(&self) -> ImageRule {
        match self {
            Self::Dev(_) => ImageRule::None,
            Self::OpenAi(_) => ImageRule::OpenAi,
            Self::Anthropic(_) => ImageRule::Anthropic,
        }
    }

    /// Asks `model` at this provider for embeddings.
    pub async fn embed(
        &self,
        request: &EmbeddingRequest,
        model: &str,
        timeouts: &Timeouts,
    ) -> Result<EmbeddingList, UpstreamError> {
        match self {
            Self::Dev(dev) => dev.embed(request, model),
            Self::OpenAi(openai) => openai.embed(request, model, timeouts).await,
            Self::Anthropic(_) => Err(UpstreamError::Unsupported("Anthropic has no embeddings API")),
        }
    }
}

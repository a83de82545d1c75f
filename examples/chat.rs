//! Streams a chat completion through the gateway with the SDK, printing the
//! answer as it arrives.
//!
//! ```sh
//! SWITCHYARD_API_KEY=sy_live_… cargo run -p switchyard-examples --example chat -- "Hello there"
//! ```
//!
//! `SWITCHYARD_URL` points it elsewhere (default `http://127.0.0.1:8000`) and
//! `SWITCHYARD_MODEL` picks the model (default `default`, which the built-in
//! `dev` provider answers when no provider is configured). The quickstart
//! example mints a key with the `chat` scope.

use std::io::Write;

use futures::StreamExt;
use switchyard_sdk::stream::chat_completion_stream;
use switchyard_sdk::types::{ChatCompletionRequest, ChatMessage};
use switchyard_sdk::{Credential, connect};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base_url = std::env::var("SWITCHYARD_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned());
    let key = std::env::var("SWITCHYARD_API_KEY").map_err(|_| anyhow::anyhow!("set SWITCHYARD_API_KEY"))?;
    let model = std::env::var("SWITCHYARD_MODEL").unwrap_or_else(|_| "default".to_owned());
    let prompt = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let prompt = if prompt.is_empty() { "Hello there".to_owned() } else { prompt };

    let client = connect(&base_url, Credential::ApiKey(key))?;
    let request = ChatCompletionRequest::new(model, vec![ChatMessage::text("user", prompt)]);
    let mut chunks = chat_completion_stream(&client, &request).await?;
    let mut out = std::io::stdout();
    while let Some(chunk) = chunks.next().await {
        for choice in chunk?.choices {
            write!(out, "{}", choice.delta.content.unwrap_or_default())?;
            out.flush()?;
        }
    }
    writeln!(out)?;
    Ok(())
}

//! OpenAI-compatible providers (OpenAI, OpenRouter, vLLM, llama.cpp, Ollama):
//! the request goes out as the client sent it, with the upstream model name
//! and only the fields this provider may receive (`fields`); answers come
//! back byte for byte, read only for their usage.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::time::Instant;

use crate::fields;
use crate::upstream;
use crate::upstream::{SseEvent, UpstreamError};
use crate::wire::{ChatCompletionRequest, EmbeddingList, EmbeddingRequest, StreamOptions, Usage};
use crate::{ChunkEvent, EventStream, Reply, Timeouts};

pub struct OpenAi {
    client: reqwest::Client,
    base_url: String,
    api_key: Option<String>,
    /// Request fields the operator lets through beyond the known-safe ones.
    pass_through: Vec<String>,
}

/// The parts of an answer usage accounting reads.
#[derive(Deserialize)]
struct UsageProbe {
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    choices: Option<Vec<ChoiceProbe>>,
}

#[derive(Deserialize)]
struct ChoiceProbe {
    #[serde(default)]
    finish_reason: Option<IgnoredAny>,
}

impl OpenAi {
    pub fn new(client: reqwest::Client, base_url: String, api_key: Option<String>) -> Self {
        Self { client, base_url, api_key, pass_through: Vec::new() }
    }

    /// Lets `fields` through to this provider (`pass_through` in its configuration).
    pub fn with_pass_through(self, fields: Vec<String>) -> Self {
        Self { pass_through: fields, ..self }
    }

    pub fn pass_through(&self) -> &[String] {
        &self.pass_through
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.post(format!("{}{path}", self.base_url));
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    pub async fn chat(
        &self,
        request: &ChatCompletionRequest,
        model: &str,
        timeouts: &Timeouts,
        deadline: Instant,
    ) -> Result<Reply, UpstreamError> {
        let mut outgoing = ChatCompletionRequest {
            model: model.to_owned(),
            extra: fields::allowed(&request.extra, fields::CHAT_FIELDS, &self.pass_through),
            ..request.clone()
        };
        if request.is_stream() {
            // Usage is always asked for; clients that did not ask never see it.
            let mut options = request.stream_options.clone().unwrap_or_default();
            options.include_usage = Some(true);
            outgoing.stream_options = Some(StreamOptions { ..options });
        }
        let body = serde_json::to_vec(&outgoing).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        let response = upstream::send(
            self.post("/chat/completions").header("content-type", "application/json").body(body),
            timeouts,
        )
        .await?;
        if !request.is_stream() {
            let body = upstream::body(response, timeouts).await?;
            let probe: UsageProbe = serde_json::from_slice(&body)
                .map_err(|e| UpstreamError::Protocol(format!("not a chat completion: {e}")))?;
            return Ok(Reply::Complete { body, usage: probe.usage });
        }
        Ok(Reply::Stream(chunk_stream(upstream::sse_events(response, timeouts, deadline))))
    }

    pub async fn embed(
        &self,
        request: &EmbeddingRequest,
        model: &str,
        timeouts: &Timeouts,
    ) -> Result<EmbeddingList, UpstreamError> {
        let outgoing = EmbeddingRequest {
            model: model.to_owned(),
            extra: fields::allowed(&request.extra, fields::EMBEDDING_FIELDS, &self.pass_through),
            ..request.clone()
        };
        let response = upstream::send(self.post("/embeddings").json(&outgoing), timeouts).await?;
        let body = upstream::body(response, timeouts).await?;
        serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Protocol(format!("not an embedding list: {e}")))
    }
}

/// The chunks of an upstream stream until `[DONE]`. A stream that ends
/// without `[DONE]` before any choice finished was cut short, and ends with
/// an error: the connection broke, or the server fell over mid-answer.
fn chunk_stream(events: BoxStream<'static, Result<SseEvent, UpstreamError>>) -> EventStream {
    futures::stream::unfold(Some((events, false)), |state| async move {
        let (mut events, mut finished) = state?;
        match events.next().await {
            Some(Ok(event)) if event.data.as_ref() == b"[DONE]" => None,
            Some(Ok(event)) => {
                let chunk = chunk_event(event.data);
                if let Ok((_, true)) = &chunk {
                    finished = true;
                }
                Some((chunk.map(|(chunk, _)| chunk), Some((events, finished))))
            }
            Some(Err(err)) => Some((Err(err), None)),
            None if finished => None,
            None => Some((Err(UpstreamError::Protocol("the stream ended mid-answer".to_owned())), None)),
        }
    })
    .boxed()
}

/// Reads the usage of one upstream chunk, leaving its bytes as they are,
/// and whether a choice finished in it.
fn chunk_event(data: Bytes) -> Result<(ChunkEvent, bool), UpstreamError> {
    let probe: UsageProbe =
        serde_json::from_slice(&data).map_err(|e| UpstreamError::Protocol(format!("not a chunk: {e}")))?;
    let choices = probe.choices.unwrap_or_default();
    let finished = choices.iter().any(|choice| choice.finish_reason.is_some());
    let usage_only = probe.usage.is_some() && choices.is_empty();
    Ok((ChunkEvent { data, usage: probe.usage, usage_only }, finished))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_their_bytes_and_report_usage() {
        let data =
            Bytes::from_static(br#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}],"odd":1}"#);
        let (event, finished) = chunk_event(data.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!finished);
        assert_eq!(event.data, data);
        assert_eq!(event.usage, None);
        assert!(!event.usage_only);

        let (last, _) = chunk_event(Bytes::from_static(
            br#"{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(last.usage, Some(Usage::new(3, 2)));
        assert!(last.usage_only);
    }

    async fn ends_of(data: &[&'static str]) -> Vec<Result<usize, String>> {
        let events = data
            .iter()
            .map(|data| Ok(SseEvent { event: None, data: Bytes::from_static(data.as_bytes()) }))
            .collect::<Vec<_>>();
        chunk_stream(futures::stream::iter(events).boxed())
            .map(|item| item.map(|chunk| chunk.data.len()).map_err(|e| e.to_string()))
            .collect()
            .await
    }

    #[tokio::test]
    async fn a_stream_that_stops_before_it_finished_is_an_error() {
        let text = r#"{"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}"#;
        let finish = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
        let cut = ends_of(&[text]).await;
        assert!(matches!(cut.as_slice(), [Ok(_), Err(e)] if e.contains("mid-answer")), "{cut:?}");
        assert!(ends_of(&[text, finish]).await.iter().all(Result::is_ok));
        assert_eq!(ends_of(&[text, "[DONE]", text]).await.len(), 1);
    }

    #[test]
    fn unreadable_chunks_are_protocol_errors() {
        assert!(matches!(chunk_event(Bytes::from_static(b"not json")), Err(UpstreamError::Protocol(_))));
    }
}

//! What a provider answers to a chat request: a whole `chat.completion`, or
//! its `chat.completion.chunk`s as they come, each with the usage it reports.

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::UpstreamError;
use crate::wire::Usage;

/// What a provider answered to a chat request.
pub enum Reply {
    /// A whole `chat.completion` as JSON, ready to send, and its usage.
    Complete { body: Bytes, usage: Option<Usage> },
    /// `chat.completion.chunk` events as they come.
    Stream(EventStream),
}

pub type EventStream = BoxStream<'static, Result<ChunkEvent, UpstreamError>>;

/// One `chat.completion.chunk`, as the JSON text of an SSE `data:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkEvent {
    pub data: Bytes,
    /// The usage the chunk reports, if any.
    pub usage: Option<Usage>,
    /// A chunk with no choices, only usage: sent only to clients that asked
    /// for `stream_options.include_usage`.
    pub usage_only: bool,
}

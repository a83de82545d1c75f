//! A provider's chunk stream as Server-Sent Events, batched into few writes,
//! ending with `data: [DONE]`, and metered as it goes.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, Stream, StreamExt};

use crate::gateway::EventStream;
use crate::gateway::ticket::Ticket;
use crate::http::error::{ApiError, ErrorCode};

/// The SSE body: each chunk as `data: …\n\n`, then `data: [DONE]`. Clients
/// that asked for usage get a last usage chunk, the provider's or the
/// ticket's count when the provider sent none; others get none. An upstream
/// failure after the first byte ends the stream with an error event. Chunks that are
/// already waiting go out together, in one write. While the provider is
/// quiet, a `: keep-alive` comment goes out every `keepalive`: writing it is
/// how a client that went away is noticed, which drops the provider's stream.
pub(super) fn sse_frames(
    events: EventStream,
    wants_usage: bool,
    keepalive: Duration,
    ticket: Ticket,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    futures::stream::unfold(Some((events, ticket)), move |state| async move {
        let (mut events, mut ticket) = state?;
        loop {
            let Ok(mut next) = tokio::time::timeout(keepalive, events.next()).await else {
                return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), Some((events, ticket))));
            };
            let mut batch = BytesMut::new();
            loop {
                match next {
                    Some(Ok(chunk)) => {
                        ticket.observe(&chunk);
                        if !chunk.usage_only {
                            ticket.responding();
                            push_frame(&mut batch, &chunk.data);
                        }
                    }
                    Some(Err(err)) => {
                        let err = ApiError::new(ErrorCode::GatewayUpstreamError, err.to_string());
                        push_frame(&mut batch, err.body_json().as_bytes());
                        ticket.finish(502);
                        return Some((Ok(batch.freeze()), None));
                    }
                    None => {
                        if let Some(usage) = ticket.usage_chunk().filter(|_| wants_usage) {
                            push_frame(&mut batch, &usage);
                        }
                        batch.extend_from_slice(b"data: [DONE]\n\n");
                        ticket.finish(200);
                        return Some((Ok(batch.freeze()), None));
                    }
                }
                if batch.len() >= MAX_BATCH_BYTES {
                    break;
                }
                match events.next().now_or_never() {
                    Some(ready) => next = ready,
                    None => break,
                }
            }
            if !batch.is_empty() {
                return Some((Ok(batch.freeze()), Some((events, ticket))));
            }
        }
    })
}

/// Past this many bytes, waiting chunks go out in the next write.
pub(super) const MAX_BATCH_BYTES: usize = 64 * 1024;

pub(super) fn push_frame(batch: &mut BytesMut, data: &[u8]) {
    batch.reserve(data.len() + 8);
    batch.extend_from_slice(b"data: ");
    batch.extend_from_slice(data);
    batch.extend_from_slice(b"\n\n");
}

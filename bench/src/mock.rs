//! A fast OpenAI-compatible upstream: `POST /v1/chat/completions` answers a
//! fixed `chat.completion` with usage, or, when the request has
//! `"stream": true`, 20 `chat.completion.chunk` events, a usage-only chunk
//! and `[DONE]`, with no delay between them. `POST
//! /silent/v1/chat/completions` answers the same without usage, as
//! llama.cpp's server does in streams. It runs on its own one-worker
//! tokio runtime, leaving the other core to the server under test.

use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use poem::http::uri::Scheme;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Body, Response, Route, Server, handler, post};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

/// Content chunks per streamed answer, before the usage chunk and `[DONE]`.
const STREAM_CHUNKS: usize = 20;

const COMPLETION: &str = concat!(
    r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"mock-model","#,
    r#""choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the mock."},"#,
    r#""finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":20,"total_tokens":28}}"#
);

const CHUNK: &str = concat!(
    r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"#,
    r#""model":"mock-model","choices":[{"index":0,"delta":{"content":"tok "},"finish_reason":null}]}"#,
    "\n\n"
);

const USAGE_CHUNK: &str = concat!(
    r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"#,
    r#""model":"mock-model","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":20,"total_tokens":28}}"#,
    "\n\n"
);

const DONE: &str = "data: [DONE]\n\n";

const COMPLETION_WITHOUT_USAGE: &str = concat!(
    r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"mock-model","#,
    r#""choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the mock."},"#,
    r#""finish_reason":"stop"}]}"#
);

/// The running mock; dropping it stops it.
pub struct Mock {
    // Held for its worker thread: dropping the runtime stops the server.
    _runtime: Runtime,
    addr: SocketAddr,
}

impl Mock {
    pub fn start() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bench-mock")
            .enable_all()
            .build()?;
        let acceptor = NoDelay(runtime.block_on(TcpListener::bind("127.0.0.1:0").into_acceptor())?);
        let addr = acceptor
            .local_addr()
            .iter()
            .find_map(|addr| addr.as_socket_addr().copied())
            .context("the mock upstream has no TCP address")?;
        let app = Route::new()
            .at("/v1/chat/completions", post(chat_completions))
            .at("/silent/v1/chat/completions", post(chat_completions_without_usage));
        runtime.spawn(Server::new_with_acceptor(acceptor).run(app));
        Ok(Self { _runtime: runtime, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// poem's TCP acceptor with Nagle's algorithm off, so that no part of an
/// answer waits for the client to acknowledge the one before.
struct NoDelay(TcpAcceptor);

impl Acceptor for NoDelay {
    type Io = TcpStream;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(&mut self) -> std::io::Result<(TcpStream, LocalAddr, RemoteAddr, Scheme)> {
        let accepted = self.0.accept().await?;
        accepted.0.set_nodelay(true)?;
        Ok(accepted)
    }
}

#[handler]
fn chat_completions(body: Bytes) -> Response {
    if wants_stream(&body) {
        Response::builder().content_type("text/event-stream").body(Body::from_bytes_stream(stream()))
    } else {
        Response::builder().content_type("application/json").body(COMPLETION)
    }
}

#[handler]
fn chat_completions_without_usage(body: Bytes) -> Response {
    if wants_stream(&body) {
        let events = std::iter::repeat_n(CHUNK, STREAM_CHUNKS).chain([DONE]);
        let stream = futures::stream::iter(
            events.map(|event| Ok::<_, std::io::Error>(Bytes::from_static(event.as_bytes()))),
        );
        Response::builder().content_type("text/event-stream").body(Body::from_bytes_stream(stream))
    } else {
        Response::builder().content_type("application/json").body(COMPLETION_WITHOUT_USAGE)
    }
}

fn wants_stream(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|request| request.get("stream").and_then(serde_json::Value::as_bool) == Some(true))
}

fn stream() -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let events = std::iter::repeat_n(CHUNK, STREAM_CHUNKS).chain([USAGE_CHUNK, DONE]);
    futures::stream::iter(events.map(|event| Ok(Bytes::from_static(event.as_bytes()))))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    fn post(mock: &Mock, body: &str) -> String {
        let mut stream = TcpStream::connect(mock.addr()).unwrap_or_else(|e| panic!("{e}"));
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: mock\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap_or_else(|e| panic!("{e}"));
        answer
    }

    #[test]
    fn answers_completions_and_streams() {
        let mock = Mock::start().unwrap_or_else(|e| panic!("{e:#}"));
        let completion = post(&mock, r#"{"model":"m","messages":[]}"#);
        assert!(completion.starts_with("HTTP/1.1 200"), "{completion}");
        assert!(completion.ends_with(COMPLETION), "{completion}");

        let stream = post(&mock, r#"{"model":"m","messages":[],"stream":true}"#);
        assert!(stream.contains("content-type: text/event-stream"), "{stream}");
        assert_eq!(stream.matches(r#""delta":{"content":"tok "}"#).count(), STREAM_CHUNKS);
        let usage = stream.find(r#""choices":[],"usage""#).unwrap_or(0);
        let done = stream.find(DONE).unwrap_or(0);
        assert!(0 < usage && usage < done, "{stream}");
    }
}

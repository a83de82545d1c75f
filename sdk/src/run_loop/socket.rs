//! One WebSocket to `/v1/runs/ws`: the address from a base URL, the
//! credential on the upgrade, the wait for `ready`, and JSON frames in and
//! out. Whether a failure is worth a reconnect is decided here, once.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use super::RunLoopError;
use crate::Credential;

/// The path of the run loop under a server's base URL.
const PATH: &str = "/v1/runs/ws";
/// How long the server may take to answer the upgrade and say `ready`.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// Close codes after which reconnecting cannot help: a bad credential, a
/// frame too large.
const FATAL_CLOSES: [u16; 2] = [4401, 1009];

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The run loop's address for `base_url`: `http(s)://` becomes `ws(s)://`,
/// and the path is added unless the URL already ends with it.
pub(super) fn socket_url(base_url: &str) -> Result<String, RunLoopError> {
    let trimmed = base_url.trim_end_matches('/');
    let url = if let Some(rest) = trimmed.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = trimmed.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if trimmed.starts_with("ws://") || trimmed.starts_with("wss://") {
        trimmed.to_owned()
    } else {
        return Err(RunLoopError::InvalidUrl(base_url.to_owned()));
    };
    Ok(if url.ends_with(PATH) { url } else { format!("{url}{PATH}") })
}

/// What ended a connection, as far as the run loop cares.
#[derive(Debug)]
pub(super) enum Dropped {
    /// Worth a new connection: the network, the server restarting, idling.
    Transient(String),
    /// Not worth one: the same would happen again.
    Fatal(RunLoopError),
}

pub(super) struct Socket {
    stream: Stream,
}

impl Socket {
    /// Opens the run loop at `url` with `credential` on the upgrade and
    /// waits for the server's `ready`.
    pub(super) async fn open(url: &str, credential: &Credential) -> Result<Self, Dropped> {
        let mut request = url
            .into_client_request()
            .map_err(|_| Dropped::Fatal(RunLoopError::InvalidUrl(url.to_owned())))?;
        let (name, value) = match credential {
            Credential::Bearer(token) => ("authorization", format!("Bearer {token}")),
            Credential::ApiKey(key) => ("x-api-key", key.clone()),
            Credential::None => return Err(Dropped::Fatal(RunLoopError::MissingCredential)),
        };
        let mut value =
            HeaderValue::from_str(&value).map_err(|_| Dropped::Fatal(RunLoopError::InvalidCredential))?;
        value.set_sensitive(true);
        request.headers_mut().insert(name, value);
        let connecting = tokio_tungstenite::connect_async(request);
        let (stream, _) = match tokio::time::timeout(READY_WITHIN, connecting).await {
            Err(_elapsed) => {
                return Err(Dropped::Transient("the upgrade was not answered in time".to_owned()));
            }
            Ok(Err(err)) => return Err(refused(err)),
            Ok(Ok(opened)) => opened,
        };
        let mut socket = Self { stream };
        match tokio::time::timeout(READY_WITHIN, socket.receive()).await {
            Err(_elapsed) => Err(Dropped::Transient("the server did not say ready in time".to_owned())),
            Ok(Err(dropped)) => Err(dropped),
            Ok(Ok(frame)) if frame.get("type").and_then(Value::as_str) == Some("ready") => Ok(socket),
            Ok(Ok(frame)) => {
                Err(Dropped::Fatal(RunLoopError::Protocol(format!("the first frame was not ready: {frame}"))))
            }
        }
    }

    pub(super) async fn send(&mut self, frame: &Value) -> Result<(), Dropped> {
        self.stream.send(Message::text(frame.to_string())).await.map_err(transient)
    }

    /// The next JSON frame; control frames are answered by tungstenite and
    /// skipped.
    pub(super) async fn receive(&mut self) -> Result<Value, Dropped> {
        loop {
            let message = match self.stream.next().await {
                None => return Err(Dropped::Transient("the connection closed".to_owned())),
                Some(Err(err)) => return Err(transient(err)),
                Some(Ok(message)) => message,
            };
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str()).map_err(|err| {
                        Dropped::Fatal(RunLoopError::Protocol(format!("a frame is not JSON: {err}")))
                    });
                }
                Message::Close(frame) => return Err(closed(frame)),
                Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Closes politely; the server forgets the connection either way.
    pub(super) async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}

fn transient(err: tungstenite::Error) -> Dropped {
    Dropped::Transient(err.to_string())
}

fn closed(frame: Option<CloseFrame>) -> Dropped {
    let Some(frame) = frame else {
        return Dropped::Transient("the server closed the connection".to_owned());
    };
    let code = u16::from(frame.code);
    let reason = frame.reason.as_str().to_owned();
    if FATAL_CLOSES.contains(&code) {
        Dropped::Fatal(RunLoopError::Closed { code, reason })
    } else {
        Dropped::Transient(format!("the server closed the connection with {code}: {reason}"))
    }
}

/// A failed upgrade: a refusal with a 4xx status is final (a bad credential,
/// a refused origin), anything else may pass on a new attempt.
fn refused(err: tungstenite::Error) -> Dropped {
    let response = match err {
        tungstenite::Error::Http(response) => response,
        tungstenite::Error::Url(err) => return Dropped::Fatal(RunLoopError::Url(err.to_string())),
        err => return transient(err),
    };
    let status = response.status().as_u16();
    let envelope: Option<Value> =
        response.body().as_deref().and_then(|body| serde_json::from_slice(body).ok());
    let field = |name: &str| {
        envelope
            .as_ref()
            .and_then(|envelope| envelope.pointer(&format!("/error/{name}")))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (code, message) = (field("code"), field("message").unwrap_or_default());
    if (400..500).contains(&status) {
        Dropped::Fatal(RunLoopError::Refused { status, code, message })
    } else {
        Dropped::Transient(format!("the upgrade was answered with HTTP {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_become_the_run_loop_address() -> Result<(), RunLoopError> {
        assert_eq!(socket_url("http://127.0.0.1:8000")?, "ws://127.0.0.1:8000/v1/runs/ws");
        assert_eq!(socket_url("https://api.example.com/")?, "wss://api.example.com/v1/runs/ws");
        assert_eq!(socket_url("ws://h:1/v1/runs/ws")?, "ws://h:1/v1/runs/ws");
        assert_eq!(socket_url("wss://h/base")?, "wss://h/base/v1/runs/ws");
        assert!(matches!(socket_url("ftp://h"), Err(RunLoopError::InvalidUrl(_))));
        Ok(())
    }
}

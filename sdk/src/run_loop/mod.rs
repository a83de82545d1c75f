//! The agent run loop over `GET /v1/runs/ws` (`openapi/asyncapi.yaml`):
//! create a run, answer its client tool calls with async handlers, and
//! follow it to its end, across dropped connections.
//!
//! ```text
//! let mut runs = RunLoop::connect("http://127.0.0.1:8000", Credential::Bearer(key)).await?
//!     .tool("get_weather", |args: serde_json::Value| async move {
//!         Ok::<_, std::io::Error>(format!("sunny in {}", args["city"]))
//!     });
//! let outcome = runs.run(&body).await?;
//! println!("{}", outcome.output().unwrap_or_default());
//! ```
//!
//! Why it is shaped this way:
//! - **Nothing is lost on a drop.** The server keeps a run waiting while its
//!   client is away. When the socket closes or errors mid-run, the loop
//!   reconnects (bounded attempts with backoff, see [`Reconnect`]) and
//!   `run.attach`es after the last `seq` it saw; before it knows the run's
//!   id it sends `run.create` again with the same idempotency key, which the
//!   server answers with the run it created the first time.
//! - **Each call is answered once.** A handler runs once per tool call id.
//!   Outputs not yet confirmed by the call's `tool.result` are sent again on
//!   a new connection; the server keeps the first, and its
//!   `run.tool_call_already_answered` / `run.not_awaiting_tool_outputs`
//!   answers to the repeats are expected and ignored.
//! - **Handlers run in tasks of their own**, so a slow tool neither stops the
//!   socket from being read (heartbeats) nor is cut short by a reconnect.
//! - **A handler's error is the tool's output**: the model reads
//!   `error: <the error>` and decides what to do, as it would with any tool
//!   that failed. A call to a tool with no handler, or with arguments that
//!   are not JSON, is answered the same way.

mod event;
mod socket;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::Credential;
use crate::types::{CreateRunRequest, RunError, RunOutput, RunPendingApproval, RunUsage, ToolExecutor};

pub use event::RunEvent;
use socket::{Dropped, Socket};

/// How long a connection may bring nothing at all (the server pings every
/// 20 seconds) before it is taken for dead and replaced.
const SILENCE: Duration = Duration::from_secs(65);

/// Error codes the server answers a repeated `tool.output` with.
const ALREADY_ANSWERED: [&str; 2] = ["run.tool_call_already_answered", "run.not_awaiting_tool_outputs"];

type Handler = Arc<dyn Fn(Value) -> BoxFuture<'static, Result<String, String>> + Send + Sync>;
type EventSink = Box<dyn FnMut(&RunEvent) + Send>;

/// How a dropped connection is replaced mid-run: up to `attempts` tries in
/// a row, waiting `first_delay`, then twice as long each time, at most
/// `max_delay`. The count starts again once a new connection brings news
/// of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self { attempts: 6, first_delay: Duration::from_millis(200), max_delay: Duration::from_secs(5) }
    }
}

impl Reconnect {
    /// Never reconnect: a drop ends the run loop with [`RunLoopError::Disconnected`].
    pub fn never() -> Self {
        Self { attempts: 0, ..Self::default() }
    }

    fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.min(16));
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// How a run ended, as far as this client is concerned.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub run_id: String,
    /// The `seq` of the run's last event seen: where [`RunLoop::attach`] goes on from.
    pub last_seq: i64,
    pub end: RunEnd,
    /// Every event of the run this call received, in order.
    pub events: Vec<RunEvent>,
}

impl RunOutcome {
    /// The answer's text, when the run completed.
    pub fn output(&self) -> Option<&str> {
        match &self.end {
            RunEnd::Completed { output, .. } => Some(&output.content),
            RunEnd::Paused { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RunEnd {
    /// `run.completed`: the model's final answer.
    Completed { output: RunOutput, usage: RunUsage, cost_usd: String },
    /// `run.paused`: an approver decides (`POST /v1/runs/{id}/resume`);
    /// [`RunLoop::attach`] follows the run on afterwards.
    Paused { pending_approval: RunPendingApproval },
}

/// An `error` frame: the `error` object of the HTTP error envelope.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ServerError {
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub why: Option<String>,
    #[serde(default)]
    pub fix: Option<String>,
    #[serde(default)]
    pub param: Option<String>,
    #[serde(default)]
    pub request_id: Option<String>,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(why) = &self.why {
            write!(f, " ({why})")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunLoopError {
    #[error("{0} is not an http(s):// or ws(s):// URL")]
    InvalidUrl(String),
    #[error("the URL cannot be used: {0}")]
    Url(String),
    #[error("the run loop needs a credential: an API key or a session token")]
    MissingCredential,
    #[error("the credential contains characters not allowed in a header")]
    InvalidCredential,
    /// The upgrade was refused: a bad credential (401), a refused origin (403).
    #[error("the server refused the connection with HTTP {status} {}: {message}", code.as_deref().unwrap_or("(no code)"))]
    Refused { status: u16, code: Option<String>, message: String },
    #[error("could not connect: {0}")]
    Unreachable(String),
    /// Closed with a code after which reconnecting cannot help (`4401`, `1009`).
    #[error("the server closed the connection with {code}: {reason}")]
    Closed { code: u16, reason: String },
    #[error("the connection dropped and {attempts} attempts to reconnect failed; the last: {reason}")]
    Disconnected { attempts: u32, reason: String },
    /// The server refused a frame about the run (`run.not_found`, `auth.scope_denied`, …).
    #[error("the server refused: {0}")]
    Server(Box<ServerError>),
    /// `run.failed`.
    #[error("run {run_id} failed: {}: {}", error.code, error.message)]
    RunFailed { run_id: String, error: Box<RunError> },
    #[error("the server sent what the protocol does not allow: {0}")]
    Protocol(String),
}

/// A connection to the run loop, with the client tools it answers.
pub struct RunLoop {
    url: String,
    credential: Credential,
    tools: HashMap<String, Handler>,
    on_event: Option<EventSink>,
    reconnect: Reconnect,
    socket: Option<Socket>,
}

impl std::fmt::Debug for RunLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut tools: Vec<&String> = self.tools.keys().collect();
        tools.sort();
        f.debug_struct("RunLoop")
            .field("url", &self.url)
            .field("credential", &self.credential)
            .field("tools", &tools)
            .field("reconnect", &self.reconnect)
            .field("connected", &self.socket.is_some())
            .finish()
    }
}

impl RunLoop {
    /// Connects to the run loop of the server at `base_url` (`http://…`,
    /// `https://…`, or the socket's own `ws://…/v1/runs/ws`), with
    /// `credential` on the upgrade, and waits until the server is ready.
    /// A refused credential is [`RunLoopError::Refused`] with status 401.
    pub async fn connect(base_url: &str, credential: Credential) -> Result<Self, RunLoopError> {
        let url = socket::socket_url(base_url)?;
        let socket = match Socket::open(&url, &credential).await {
            Ok(socket) => socket,
            Err(Dropped::Fatal(err)) => return Err(err),
            Err(Dropped::Transient(reason)) => return Err(RunLoopError::Unreachable(reason)),
        };
        Ok(Self {
            url,
            credential,
            tools: HashMap::new(),
            on_event: None,
            reconnect: Reconnect::default(),
            socket: Some(socket),
        })
    }

    /// Answers calls of the client tool `name` with `handler`, which gets
    /// the call's arguments as JSON. Its output is sent as the tool's
    /// output; its error as `error: <the error>`. A later handler for the
    /// same name replaces the earlier one.
    pub fn tool<F, Fut, E>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let handler: Handler = Arc::new(move |arguments| {
            handler(arguments).map(|result| result.map_err(|err| err.to_string())).boxed()
        });
        self.tools.insert(name.into(), handler);
        self
    }

    /// Calls `sink` with every event of the runs this loop follows, as it
    /// arrives (each once, even across reconnects).
    pub fn on_event(mut self, sink: impl FnMut(&RunEvent) + Send + 'static) -> Self {
        self.on_event = Some(Box::new(sink));
        self
    }

    /// Replaces the [`Reconnect`] policy.
    pub fn reconnect(mut self, policy: Reconnect) -> Self {
        self.reconnect = policy;
        self
    }

    /// Creates a run from `body` (as `POST /v1/runs` takes it), answers its
    /// client tool calls, and returns when it completes or pauses for an
    /// approver; `run.failed` is [`RunLoopError::RunFailed`].
    pub async fn run(&mut self, body: &CreateRunRequest) -> Result<RunOutcome, RunLoopError> {
        let body = serde_json::to_value(body)
            .map_err(|err| RunLoopError::Protocol(format!("the run does not render as JSON: {err}")))?;
        let key = format!("sdk_{}", ulid::Ulid::new());
        self.drive(Progress::new(Start::Create { key, body })).await
    }

    /// Follows the run `run_id` from after its event `after` (0: from the
    /// start), answering its client tool calls, until it completes or
    /// pauses: for a run created elsewhere, or one an approver has resumed.
    /// Calls replayed from before `after` are not answered again; calls
    /// replayed after it are given to the handlers even if someone else
    /// answered them already (the server keeps the first answer).
    pub async fn attach(&mut self, run_id: &str, after: i64) -> Result<RunOutcome, RunLoopError> {
        let mut progress = Progress::new(Start::Attach);
        progress.run_id = Some(run_id.to_owned());
        progress.last_seq = after;
        self.drive(progress).await
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        if let Some(socket) = self.socket.take() {
            socket.close().await;
        }
    }

    async fn drive(&mut self, mut progress: Progress) -> Result<RunOutcome, RunLoopError> {
        let mut handlers: JoinSet<(String, String)> = JoinSet::new();
        let mut failures = 0u32;
        let mut reason = String::new();
        let mut fresh = true;
        loop {
            if self.socket.is_none() {
                self.reopen(&mut failures, &mut reason).await?;
                fresh = true;
            }
            let Some(socket) = self.socket.as_mut() else { continue };
            if fresh {
                fresh = false;
                if let Err(dropped) = progress.resume(socket).await {
                    reason = self.dropped(dropped)?;
                    continue;
                }
            }
            let received = tokio::select! {
                received = tokio::time::timeout(SILENCE, socket.receive()) => received,
                Some(Ok((call_id, output))) = handlers.join_next(), if !handlers.is_empty() => {
                    if let Err(dropped) = progress.answer(socket, call_id, output).await {
                        reason = self.dropped(dropped)?;
                    }
                    continue;
                }
            };
            let frame = match received {
                Err(_elapsed) => {
                    reason = self.dropped(Dropped::Transient("the connection fell silent".to_owned()))?;
                    continue;
                }
                Ok(Err(dropped)) => {
                    reason = self.dropped(dropped)?;
                    continue;
                }
                Ok(Ok(frame)) => frame,
            };
            match progress.take(frame)? {
                Next::Nothing => {}
                Next::News => failures = 0,
                Next::Event(event) => {
                    failures = 0;
                    if let Some(sink) = self.on_event.as_mut() {
                        sink(&event);
                    }
                    if let RunEvent::ToolCall(call) = &event {
                        if call.executor == ToolExecutor::Client
                            && progress.started.insert(call.tool_call.id.clone())
                        {
                            let handler = self.tools.get(&call.tool_call.name).cloned();
                            handlers.spawn(answer_call(handler, call.tool_call.clone()));
                        }
                    }
                    if let Some(end) = progress.record(event)? {
                        return Ok(end);
                    }
                }
            }
        }
    }

    /// Forgets a dropped connection; the reason when a new one may help.
    fn dropped(&mut self, dropped: Dropped) -> Result<String, RunLoopError> {
        self.socket = None;
        match dropped {
            Dropped::Transient(reason) => Ok(reason),
            Dropped::Fatal(err) => Err(err),
        }
    }

    /// A new connection, within the [`Reconnect`] policy.
    async fn reopen(&mut self, failures: &mut u32, reason: &mut String) -> Result<(), RunLoopError> {
        loop {
            if *failures >= self.reconnect.attempts {
                return Err(RunLoopError::Disconnected { attempts: *failures, reason: reason.clone() });
            }
            tokio::time::sleep(self.reconnect.delay(*failures)).await;
            *failures += 1;
            match Socket::open(&self.url, &self.credential).await {
                Ok(socket) => {
                    self.socket = Some(socket);
                    return Ok(());
                }
                Err(Dropped::Transient(why)) => *reason = why,
                Err(Dropped::Fatal(err)) => return Err(err),
            }
        }
    }
}

/// Runs `handler` on `call`, turning every way it can fail into an output
/// the model can read.
async fn answer_call(handler: Option<Handler>, call: crate::types::RunToolCall) -> (String, String) {
    let Some(handler) = handler else {
        return (call.id, format!("error: this client has no tool named {}", call.name));
    };
    let arguments = match serde_json::from_str::<Value>(&call.arguments) {
        Ok(arguments) => arguments,
        Err(err) => return (call.id, format!("error: the arguments are not JSON: {err}")),
    };
    let output = match AssertUnwindSafe(async move { handler(arguments).await }).catch_unwind().await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => format!("error: {err}"),
        Err(_panic) => "error: the tool failed unexpectedly".to_owned(),
    };
    (call.id, output)
}

/// How a drive begins on each new connection until the run's id is known.
enum Start {
    Create { key: String, body: Value },
    Attach,
}

/// What a frame meant for the drive.
enum Next {
    Nothing,
    /// The server acknowledged the run (`run.created`, `run.attached`).
    News,
    Event(RunEvent),
}

/// What one drive knows of its run: enough to pick up on a new connection.
struct Progress {
    start: Start,
    run_id: Option<String>,
    last_seq: i64,
    events: Vec<RunEvent>,
    /// Tool calls given to a handler.
    started: HashSet<String>,
    /// Outputs sent, by call id, until the call's `tool.result` confirms them.
    unconfirmed: HashMap<String, String>,
    /// The call each `tool.output` frame answered, by the frame's `ref`.
    refs: HashMap<String, String>,
}

impl Progress {
    fn new(start: Start) -> Self {
        Self {
            start,
            run_id: None,
            last_seq: 0,
            events: Vec::new(),
            started: HashSet::new(),
            unconfirmed: HashMap::new(),
            refs: HashMap::new(),
        }
    }

    /// Picks the run up on a new connection: creates it (again, with the
    /// same key) or attaches after the last event seen, then sends again
    /// the outputs the server may not have got.
    async fn resume(&mut self, socket: &mut Socket) -> Result<(), Dropped> {
        match (&self.run_id, &self.start) {
            (None, Start::Create { key, body }) => {
                socket
                    .send(
                        &json!({"type": "run.create", "ref": "create", "idempotency_key": key, "run": body}),
                    )
                    .await?;
            }
            (Some(run_id), _) => {
                socket
                    .send(&json!({"type": "run.attach", "ref": "attach", "run_id": run_id, "after": self.last_seq}))
                    .await?;
            }
            (None, Start::Attach) => {}
        }
        let pending: Vec<(String, String)> =
            self.unconfirmed.iter().map(|(id, output)| (id.clone(), output.clone())).collect();
        for (call_id, output) in pending {
            self.answer(socket, call_id, output).await?;
        }
        Ok(())
    }

    async fn answer(&mut self, socket: &mut Socket, call_id: String, output: String) -> Result<(), Dropped> {
        let Some(run_id) = self.run_id.clone() else { return Ok(()) };
        let reference = format!("out{}", self.refs.len() + 1);
        self.refs.insert(reference.clone(), call_id.clone());
        let frame = json!({"type": "tool.output", "ref": reference, "run_id": run_id,
            "tool_call_id": call_id, "output": output});
        self.unconfirmed.insert(call_id, output);
        socket.send(&frame).await
    }

    /// What `frame` means for the run.
    fn take(&mut self, frame: Value) -> Result<Next, RunLoopError> {
        let kind = frame.get("type").and_then(Value::as_str).unwrap_or_default();
        let reference = frame.get("ref").and_then(Value::as_str);
        match kind {
            "run.created" if reference == Some("create") && self.run_id.is_none() => {
                let run_id = frame
                    .pointer("/run/id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| RunLoopError::Protocol(format!("run.created names no run: {frame}")))?;
                self.run_id = Some(run_id.to_owned());
                Ok(Next::News)
            }
            "run.attached" if reference == Some("attach") => Ok(Next::News),
            "error" => self.refused(&frame).map(|()| Next::Nothing),
            _ => {
                let event = RunEvent::parse(&frame).map_err(|err| {
                    RunLoopError::Protocol(format!("a {kind} event does not parse: {err}: {frame}"))
                })?;
                Ok(match event {
                    Some(event)
                        if Some(event.run_id()) == self.run_id.as_deref() && event.seq() > self.last_seq =>
                    {
                        Next::Event(event)
                    }
                    // Another run's, one seen before a drop, or a frame of no concern.
                    _ => Next::Nothing,
                })
            }
        }
    }

    /// An `error` frame: ignored when it is about another run or is the
    /// expected answer to an output sent again; the end of the drive otherwise.
    fn refused(&mut self, frame: &Value) -> Result<(), RunLoopError> {
        let error: ServerError = frame
            .get("error")
            .cloned()
            .and_then(|error| serde_json::from_value(error).ok())
            .ok_or_else(|| RunLoopError::Protocol(format!("an error frame without an error: {frame}")))?;
        let run_id = frame.get("run_id").and_then(Value::as_str);
        if run_id.is_some() && run_id != self.run_id.as_deref() {
            return Ok(());
        }
        let answered =
            frame.get("ref").and_then(Value::as_str).and_then(|reference| self.refs.get(reference));
        if let Some(call_id) = answered {
            if ALREADY_ANSWERED.contains(&error.code.as_str()) {
                self.unconfirmed.remove(call_id);
                return Ok(());
            }
        }
        Err(RunLoopError::Server(Box::new(error)))
    }

    /// Keeps `event`; the outcome when it ends the drive.
    fn record(&mut self, event: RunEvent) -> Result<Option<RunOutcome>, RunLoopError> {
        self.last_seq = event.seq();
        let end = match &event {
            RunEvent::ToolResult(result) => {
                self.unconfirmed.remove(&result.step.tool_call_id);
                None
            }
            RunEvent::Completed(done) => Some(RunEnd::Completed {
                output: done.output.clone(),
                usage: done.usage.clone(),
                cost_usd: done.cost_usd.clone(),
            }),
            RunEvent::Paused(paused) => {
                Some(RunEnd::Paused { pending_approval: paused.pending_approval.clone() })
            }
            RunEvent::Failed(failed) => {
                return Err(RunLoopError::RunFailed {
                    run_id: failed.run_id.clone(),
                    error: Box::new(failed.error.clone()),
                });
            }
            _ => None,
        };
        self.events.push(event);
        Ok(end.map(|end| RunOutcome {
            run_id: self.run_id.clone().unwrap_or_default(),
            last_seq: self.last_seq,
            end,
            events: std::mem::take(&mut self.events),
        }))
    }
}

//! One run-loop connection: authenticates it (on the upgrade or by the
//! first frame), acts on each frame through the runs front, and follows
//! the runs it created or attached to, sending their events as they are
//! written. Frames are handled one at a time, in order, so two outputs
//! for one run never race; what takes long (driving a run) happens in the
//! run's driver, not here.

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use poem::web::websocket::{CloseCode, Message, WebSocketStream};
use poem_openapi::types::{ParseFromJSON, ToJSON};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::http::error::{ApiError, ErrorCode};
use crate::http::idempotency::{StoredJson, request_hash};
use crate::http::request_id;
use crate::idempotency::{Answer, IdempotentRequest};
use crate::kernel::error::DomainError;
use crate::kernel::principal::{Principal, Via};
use crate::runs::api::events::RunStreamEvent;
use crate::runs::api::wire::{CreateRunRequest, Run};
use crate::runs::{Runs, ToolOutput, Wait};
use crate::state::AppState;

use super::frames::{
    ApprovalFrame, ClientFrame, DecisionName, ErrorFrame, PongFrame, ReadyFrame, RunAttachFrame,
    RunAttachedFrame, RunCreateFrame, RunCreatedFrame, ServerFrame, ToolOutputFrame,
};

/// How long an unauthenticated connection may wait before its `auth` frame.
const AUTH_WITHIN: Duration = Duration::from_secs(10);
/// How often the server pings.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// How long a connection may stay silent (no frame, no pong) before it is closed.
const IDLE: Duration = Duration::from_secs(60);
/// Runs one connection may follow at a time.
pub const MAX_FOLLOWED: usize = 64;
/// Frames waiting to be written before senders wait for the socket.
const OUTBOX: usize = 256;

/// Close codes of the protocol, as the AsyncAPI document lists them.
const CLOSE_UNAUTHENTICATED: u16 = 4401;
const CLOSE_IDLE: u16 = 4408;

/// A credential the connection acts with: each frame is authorised with it
/// afresh, so a key revoked or a session ended stops working on open
/// sockets too.
#[derive(Debug, Clone)]
pub struct Credential {
    pub token: String,
    /// `X-Switchyard-Org`, or the `auth` frame's `org`.
    pub org: Option<String>,
    /// Whom it stood for when it was checked.
    pub principal: Principal,
}

/// What goes out: a frame, or a run's event.
enum Outgoing {
    Frame(ServerFrame),
    Event(RunStreamEvent),
    Close(u16, &'static str),
}

pub struct Connection {
    state: AppState,
    runs: Runs,
    credential: Option<Credential>,
    /// The followers of the runs this connection follows, by run id.
    followed: HashMap<String, JoinHandle<()>>,
}

impl Connection {
    pub fn new(state: AppState, runs: Runs, credential: Option<Credential>) -> Self {
        Self { state, runs, credential, followed: HashMap::new() }
    }

    /// Serves the connection until the client leaves, falls silent, fails to
    /// authenticate in time, or the server shuts down.
    pub async fn serve(mut self, stream: WebSocketStream) {
        let (mut sink, mut incoming) = stream.split();
        let (out, mut outbox) = mpsc::channel::<Outgoing>(OUTBOX);
        let writer = tokio::spawn(request_id::scope(request_id::current().unwrap_or_default(), async move {
            let mut beat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
            loop {
                let message = tokio::select! {
                    next = outbox.recv() => match next {
                        Some(Outgoing::Frame(frame)) => Message::Text(frame_text(&frame)),
                        Some(Outgoing::Event(event)) => Message::Text(event_text(&event)),
                        Some(Outgoing::Close(code, reason)) => {
                            let _ = sink.send(Message::close_with(CloseCode::from(code), reason)).await;
                            break;
                        }
                        None => break,
                    },
                    _ = beat.tick() => Message::Ping(Vec::new()),
                };
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        }));
        if let Some(credential) = &self.credential {
            let _ = out.send(Outgoing::Frame(ready(&credential.principal))).await;
        }
        let stopping = self.runs.stopping();
        let auth_deadline = Instant::now() + AUTH_WITHIN;
        loop {
            let wait_for = if self.credential.is_some() { Instant::now() + IDLE } else { auth_deadline };
            let next = tokio::select! {
                next = tokio::time::timeout_at(wait_for, incoming.next()) => next,
                () = stopping.cancelled() => {
                    let _ = out.send(Outgoing::Close(1001, "the server is shutting down")).await;
                    break;
                }
            };
            let message = match next {
                Err(_elapsed) if self.credential.is_none() => {
                    let error = ApiError::new(ErrorCode::AuthMissingCredentials, "No credential came").why(
                        format!("Send an auth frame within {} seconds of connecting.", AUTH_WITHIN.as_secs()),
                    );
                    let _ = out.send(error_frame(None, None, &error)).await;
                    let _ = out.send(Outgoing::Close(CLOSE_UNAUTHENTICATED, "no credential")).await;
                    break;
                }
                Err(_elapsed) => {
                    let _ = out.send(Outgoing::Close(CLOSE_IDLE, "idle")).await;
                    break;
                }
                Ok(None | Some(Err(_))) => break,
                Ok(Some(Ok(message))) => message,
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Binary(_) => {
                    let error = ApiError::new(ErrorCode::RequestMalformed, "Frames are JSON text messages");
                    let _ = out.send(error_frame(None, None, &error)).await;
                    continue;
                }
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if !self.handle(&text, &out).await {
                break;
            }
        }
        for (_, follower) in self.followed.drain() {
            follower.abort();
        }
        drop(out);
        let _ = writer.await;
    }

    /// Acts on one frame; `false` when the connection is to close.
    async fn handle(&mut self, text: &str, out: &mpsc::Sender<Outgoing>) -> bool {
        let frame = match parse(text) {
            Ok(frame) => frame,
            Err(refused) => {
                let (reference, error) = *refused;
                let _ = out.send(error_frame(reference, None, &error)).await;
                return true;
            }
        };
        if let ClientFrame::Auth(auth) = frame {
            return match self.state.principal_from_token(&auth.token).await {
                Ok(principal) => {
                    let _ = out.send(Outgoing::Frame(ready(&principal))).await;
                    self.credential = Some(Credential { token: auth.token, org: auth.org, principal });
                    true
                }
                Err(err) => {
                    let _ = out.send(error_frame(None, None, &ApiError::from(err))).await;
                    if self.credential.is_some() {
                        true
                    } else {
                        let _ = out.send(Outgoing::Close(CLOSE_UNAUTHENTICATED, "bad credential")).await;
                        false
                    }
                }
            };
        }
        let Some(credential) = self.credential.clone() else {
            let error = ApiError::new(ErrorCode::AuthMissingCredentials, "Authenticate first")
                .why("The upgrade carried no credential, and the first frame was not an auth frame.");
            let _ = out.send(error_frame(None, None, &error)).await;
            let _ = out.send(Outgoing::Close(CLOSE_UNAUTHENTICATED, "no credential")).await;
            return false;
        };
        let principal = match self.state.principal_from_token(&credential.token).await {
            Ok(principal) => principal,
            Err(err) => {
                // The credential expired or was revoked: a new auth frame may replace it.
                let _ = out.send(error_frame(frame.reference(), frame.run_id(), &ApiError::from(err))).await;
                return true;
            }
        };
        let reference = frame.reference();
        let run_id = frame.run_id();
        let result = match frame {
            ClientFrame::Auth(_) => Ok(()),
            ClientFrame::Ping(ping) => {
                let _ = out
                    .send(Outgoing::Frame(ServerFrame::Pong(PongFrame { reference: ping.reference })))
                    .await;
                Ok(())
            }
            ClientFrame::RunCreate(create) => self.create(&principal, &credential, create, out).await,
            ClientFrame::ToolOutput(output) => self.tool_output(&principal, output).await,
            ClientFrame::Approval(approval) => self.approval(&principal, approval).await,
            ClientFrame::RunCancel(cancel) => {
                self.runs.cancel(&principal, &cancel.run_id).await.map(drop).map_err(ApiError::from)
            }
            ClientFrame::RunAttach(attach) => self.attach(&principal, attach, out).await,
        };
        if let Err(error) = result {
            let _ = out.send(error_frame(reference, run_id, &error)).await;
        }
        true
    }

    /// Creates the run (once per `idempotency_key`), answers `run.created`
    /// and follows the run from its first event.
    async fn create(
        &mut self,
        principal: &Principal,
        credential: &Credential,
        frame: RunCreateFrame,
        out: &mpsc::Sender<Outgoing>,
    ) -> Result<(), ApiError> {
        self.room_to_follow(None)?;
        let body = CreateRunRequest::parse_from_json(Some(frame.run)).map_err(|err| {
            ApiError::new(ErrorCode::RequestMalformed, "run is not a valid POST /v1/runs body")
                .why(err.into_message())
                .param("run")
        })?;
        let org = frame.org.or_else(|| credential.org.clone());
        let runs = self.runs.clone();
        let creator = principal.clone();
        let work_org = org.clone();
        let work_body = body.clone();
        let work = async move {
            let run = runs.create(&creator, work_org.as_deref(), work_body.into(), Wait::UntilStored).await?;
            Ok::<_, ApiError>(Answer { status: 201, body: StoredJson::render(&Run::from(run)) })
        };
        let (answer, replayed) = match frame.idempotency_key {
            None => (work.await?, false),
            Some(key) => {
                let hash = request_hash("run_ws_create", &body, &[("org", org.as_deref())]);
                let once = IdempotentRequest::new(principal, &key, "run_ws_create", hash)?;
                let replayable = self.state.idempotency.once(&once, work).await?;
                (replayable.answer, replayable.replayed)
            }
        };
        let run: Value = serde_json::from_str(&answer.body).map_err(|err| {
            ApiError::from(DomainError::Internal(format!("a stored run is not JSON: {err}")))
        })?;
        let run_id = run.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let created = RunCreatedFrame { reference: frame.reference, replayed, run };
        let _ = out.send(Outgoing::Frame(ServerFrame::RunCreated(created))).await;
        self.follow(principal, &run_id, 0, out).await
    }

    async fn tool_output(&self, principal: &Principal, frame: ToolOutputFrame) -> Result<(), ApiError> {
        let output = ToolOutput { tool_call_id: frame.tool_call_id, output: frame.output };
        self.runs.submit_tool_outputs(principal, &frame.run_id, vec![output], Wait::UntilStored).await?;
        Ok(())
    }

    async fn approval(&self, principal: &Principal, frame: ApprovalFrame) -> Result<(), ApiError> {
        let decision = match frame.decision {
            DecisionName::Approved => crate::runs::model::Decision::Approved,
            DecisionName::Rejected => crate::runs::model::Decision::Rejected,
        };
        self.runs.resume(principal, &frame.run_id, decision, frame.reason, Wait::UntilStored).await?;
        Ok(())
    }

    /// Answers `run.attached`, then replays the run's events after `after`
    /// and follows it.
    async fn attach(
        &mut self,
        principal: &Principal,
        frame: RunAttachFrame,
        out: &mpsc::Sender<Outgoing>,
    ) -> Result<(), ApiError> {
        if frame.after < 0 {
            return Err(ApiError::new(ErrorCode::RequestInvalid, "after must be 0 or more").param("after"));
        }
        self.room_to_follow(Some(&frame.run_id))?;
        // Checks the caller may see the run before saying it is attached.
        let events = self.runs.follow(principal, &frame.run_id, frame.after).await?;
        let attached =
            RunAttachedFrame { reference: frame.reference, run_id: frame.run_id.clone(), after: frame.after };
        let _ = out.send(Outgoing::Frame(ServerFrame::RunAttached(attached))).await;
        self.forward(frame.run_id, events, out);
        Ok(())
    }

    async fn follow(
        &mut self,
        principal: &Principal,
        run_id: &str,
        after: i64,
        out: &mpsc::Sender<Outgoing>,
    ) -> Result<(), ApiError> {
        let events = self.runs.follow(principal, run_id, after).await?;
        self.forward(run_id.to_owned(), events, out);
        Ok(())
    }

    /// Sends the run's events as they come, in a task of their own (which
    /// replaces one already following the run).
    fn forward(
        &mut self,
        run_id: String,
        events: impl futures::Stream<Item = crate::kernel::error::DomainResult<crate::runs::model::EventRecord>>
        + Send
        + 'static,
        out: &mpsc::Sender<Outgoing>,
    ) {
        let out = out.clone();
        let id = run_id.clone();
        let follower =
            tokio::spawn(request_id::scope(request_id::current().unwrap_or_default(), async move {
                let mut events = Box::pin(events);
                while let Some(event) = events.next().await {
                    let outgoing = match event {
                        Ok(record) => Outgoing::Event(RunStreamEvent::from(record)),
                        Err(err) => error_frame(None, Some(id.clone()), &ApiError::from(err)),
                    };
                    if out.send(outgoing).await.is_err() {
                        break;
                    }
                }
            }));
        if let Some(previous) = self.followed.insert(run_id, follower) {
            previous.abort();
        }
    }

    /// Refuses to follow one run more when the connection follows as many as
    /// it may (following `run_id` again takes no more room).
    fn room_to_follow(&mut self, run_id: Option<&str>) -> Result<(), ApiError> {
        self.followed.retain(|_, follower| !follower.is_finished());
        let again = run_id.is_some_and(|id| self.followed.contains_key(id));
        if again || self.followed.len() < MAX_FOLLOWED {
            return Ok(());
        }
        Err(ApiError::new(ErrorCode::RunTooManyFollowed, "This connection follows too many runs")
            .why(format!("A connection follows at most {MAX_FOLLOWED} runs at a time; a run is followed until its last event was sent."))
            .fix("Wait for a run to end, or open another connection."))
    }
}

impl ClientFrame {
    fn reference(&self) -> Option<String> {
        match self {
            Self::Auth(_) => None,
            Self::RunCreate(frame) => frame.reference.clone(),
            Self::ToolOutput(frame) => frame.reference.clone(),
            Self::Approval(frame) => frame.reference.clone(),
            Self::RunCancel(frame) => frame.reference.clone(),
            Self::RunAttach(frame) => frame.reference.clone(),
            Self::Ping(frame) => frame.reference.clone(),
        }
    }

    fn run_id(&self) -> Option<String> {
        match self {
            Self::Auth(_) | Self::RunCreate(_) | Self::Ping(_) => None,
            Self::ToolOutput(frame) => Some(frame.run_id.clone()),
            Self::Approval(frame) => Some(frame.run_id.clone()),
            Self::RunCancel(frame) => Some(frame.run_id.clone()),
            Self::RunAttach(frame) => Some(frame.run_id.clone()),
        }
    }
}

/// A frame, or what to answer instead: 400 `request.malformed` naming what
/// is wrong, with the frame's `ref` when it had a readable one.
fn parse(text: &str) -> Result<ClientFrame, Box<(Option<String>, ApiError)>> {
    let value: Value = serde_json::from_str(text).map_err(|err| {
        Box::new((
            None,
            ApiError::new(ErrorCode::RequestMalformed, "The frame is not JSON").why(err.to_string()),
        ))
    })?;
    let reference = value.get("ref").and_then(Value::as_str).map(str::to_owned);
    let frame: ClientFrame = serde_json::from_value(value).map_err(|err| {
        let error = ApiError::new(ErrorCode::RequestMalformed, "The frame is not one this channel takes")
            .why(err.to_string())
            .fix("See openapi/asyncapi.yaml for the frames and their fields.");
        Box::new((reference.clone(), error))
    })?;
    if reference.as_ref().is_some_and(|r| r.is_empty() || r.chars().count() > 64) {
        let error = ApiError::new(ErrorCode::RequestInvalid, "ref must be 1 to 64 characters").param("ref");
        return Err(Box::new((None, error)));
    }
    Ok(frame)
}

fn ready(principal: &Principal) -> ServerFrame {
    let key_id = match &principal.via {
        Via::ApiKey { key_id, .. } => Some(key_id.clone()),
        Via::Session { .. } => None,
    };
    ServerFrame::Ready(ReadyFrame {
        user_id: principal.user_id.clone(),
        key_id,
        heartbeat_secs: u32::try_from(HEARTBEAT.as_secs()).unwrap_or(u32::MAX),
    })
}

fn error_frame(reference: Option<String>, run_id: Option<String>, error: &ApiError) -> Outgoing {
    let error = error.body().error.to_json().unwrap_or(Value::Null);
    Outgoing::Frame(ServerFrame::Error(ErrorFrame { reference, run_id, error }))
}

fn frame_text(frame: &ServerFrame) -> String {
    serde_json::to_string(frame).unwrap_or_else(|err| {
        tracing::error!(error = %err, "a server frame did not render as JSON");
        String::from("{}")
    })
}

fn event_text(event: &RunStreamEvent) -> String {
    event.to_json().map(|json| json.to_string()).unwrap_or_else(|| {
        tracing::error!("a run event rendered as no JSON value");
        String::from("{}")
    })
}

//! `/v1/runs`: create runs, read and list them, answer their client tool
//! calls, decide on paused runs, cancel them.

mod events;
mod sessions;
mod wire;
pub mod ws;

use chrono::{DateTime, Utc};
use poem::http::{HeaderValue, StatusCode};
use poem::web::Data;
use poem::{IntoResponse, Response};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaMediaType, MetaResponses, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, OpenApi};

use crate::http::credential::AnyCredential;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::idempotency::{StoredJson, request_hash, sent_key};
use crate::http::page::{PageCursor, PageSize};
use crate::http::{ApiTags, Ok200};
use crate::idempotency::{Answer, IdempotentRequest, Replayable};
use crate::kernel::error::DomainError;
use crate::kernel::principal::Principal;
use crate::runs::{Runs, RunsWanted, Wait};
use crate::state::AppState;
use crate::{operation_errors, with_response_headers};

pub use events::{RunEventList, RunEventsReply, RunStreamEvent};
pub use sessions::RunSessionsApi;
pub use wire::{CreateRunRequest, ResumeRunRequest, Run, RunList, RunStatusName, SubmitToolOutputsRequest};
pub use ws::{SocketSettings, runs_socket};

#[derive(Default)]
pub struct RunsApi;

with_response_headers! {
    /// A new run as JSON: stopped (201) or left to run in the background (202).
    pub enum RunCreatedJson {
        /// The run ran until it stopped: `completed`, `requires_action`,
        /// `paused`, `blocked` or `error`; or, with `stream: true`, its events.
        #[oai(status = 201)]
        Stopped(
            StoredJson<Run>,
            /// `true` when this is the stored answer to an earlier request with the same `Idempotency-Key`.
            #[oai(header = "Idempotent-Replayed")]
            Option<bool>,
        ),
        /// A background run, `pending`; follow it with `GET /v1/runs/{id}`.
        #[oai(status = 202)]
        Started(
            StoredJson<Run>,
            /// `true` when this is the stored answer to an earlier request with the same `Idempotency-Key`.
            #[oai(header = "Idempotent-Replayed")]
            Option<bool>,
        ),
    }
}

/// A new run: as JSON, or with `stream: true` its events (201,
/// `text/event-stream`), as `GET /v1/runs/{id}/events` streams them.
pub enum RunCreated {
    Json(RunCreatedJson),
    Streamed { events: RunEventsReply, replayed: bool },
}

impl ApiResponse for RunCreated {
    fn meta() -> MetaResponses {
        let mut meta = RunCreatedJson::meta();
        for response in meta.responses.iter_mut().filter(|response| response.status == Some(201)) {
            response.content.push(MetaMediaType {
                content_type: "text/event-stream",
                schema: RunStreamEvent::schema_ref(),
            });
        }
        meta
    }

    fn register(registry: &mut Registry) {
        RunCreatedJson::register(registry);
        RunStreamEvent::register(registry);
    }
}

impl IntoResponse for RunCreated {
    fn into_response(self) -> Response {
        match self {
            Self::Json(json) => json.into_response(),
            Self::Streamed { events, replayed } => {
                let mut response = events.into_response();
                response.set_status(StatusCode::CREATED);
                if replayed {
                    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
                }
                response
            }
        }
    }
}

impl TryFrom<Replayable> for RunCreatedJson {
    type Error = RunCreateError;

    fn try_from(Replayable { answer, replayed }: Replayable) -> Result<Self, RunCreateError> {
        let body = StoredJson::from_text(answer.body);
        let replayed = replayed.then_some(true);
        match answer.status {
            201 => Ok(Self::Stopped(body, replayed)),
            202 => Ok(Self::Started(body, replayed)),
            status => Err(ApiError::new(ErrorCode::ServerInternal, "Internal server error")
                .why(format!("The stored answer has status {status}, which run_create never sends."))
                .into()),
        }
    }
}

/// Creates the run and renders the answer: 201 with the run once it
/// stopped, 202 for a background run; a streamed run is answered as soon as
/// it is stored, and its events follow.
async fn create_run(
    runs: Runs,
    principal: Principal,
    org: Option<String>,
    body: CreateRunRequest,
) -> Result<Answer, RunCreateError> {
    let wait = if body.stream { Wait::UntilStored } else { Wait::UntilStopped };
    let run = runs.create(&principal, org.as_deref(), body.into(), wait).await?;
    let status = if run.spec.background { 202 } else { 201 };
    Ok(Answer { status, body: StoredJson::render(&Run::from(run)) })
}

/// The answer to `run_create`: the run as JSON, or its events when asked
/// to stream (also on a replay, from the first event).
async fn answer_created(
    runs: &Runs,
    principal: &Principal,
    streamed: bool,
    created: Replayable,
) -> Result<RunCreated, RunCreateError> {
    if !streamed {
        return Ok(RunCreated::Json(RunCreatedJson::try_from(created)?));
    }
    let run: serde_json::Value = serde_json::from_str(&created.answer.body)
        .map_err(|err| ApiError::from(DomainError::Internal(format!("a stored run is not JSON: {err}"))))?;
    let id = run.get("id").and_then(serde_json::Value::as_str).unwrap_or_default();
    let events = runs.follow(principal, id, 0).await?;
    Ok(RunCreated::Streamed { events: RunEventsReply::stream(events), replayed: created.replayed })
}

operation_errors!(RunCreateError: 400, 401, 403, 404, 409, 422, 429);
operation_errors!(RunListError: 400, 401, 403, 404, 429);
operation_errors!(RunGetError: 401, 403, 404, 429);
operation_errors!(RunToolOutputsError: 400, 401, 403, 404, 409, 422, 429);
operation_errors!(RunResumeError: 400, 401, 403, 404, 409, 429);
operation_errors!(RunCancelError: 401, 403, 404, 409, 429);
operation_errors!(RunEventsError: 400, 401, 403, 404, 429);

#[OpenApi(tag = "ApiTags::Runs")]
impl RunsApi {
    /// Starts a run: the model answers over the gateway (metered like any
    /// chat completion), server tools run on the server, and client tools
    /// make the run wait in `requires_action` for their outputs. Answers
    /// when the run stops, or at once with `background: true`. Needs the
    /// `runs` scope. With an `Idempotency-Key`, a retry of the same request
    /// replays the first answer instead of starting another run.
    #[oai(path = "/v1/runs", method = "post", operation_id = "run_create")]
    #[expect(
        clippy::too_many_arguments,
        reason = "each header is an argument: poem-openapi has no header structs"
    )]
    async fn run_create(
        &self,
        request: &poem::Request,
        state: Data<&AppState>,
        runs: Data<&Runs>,
        auth: AnyCredential,
        /// With a session token: the organization to run and be metered in
        /// (one the user belongs to). API keys act in their own.
        #[oai(name = "X-Switchyard-Org")]
        org: Header<Option<String>>,
        /// Makes the request safe to retry: 1 to 255 printable ASCII
        /// characters, unique per request. The same key with the same body
        /// (and `X-Switchyard-Org`) replays the first success, run id
        /// included, with `Idempotent-Replayed: true`; with another body it is
        /// a 409. A refused or failed request keeps nothing, so its key may
        /// be sent again. Keys are kept for 24 hours.
        #[oai(name = "Idempotency-Key", validator(min_length = 1, max_length = 255))]
        idempotency_key: Header<Option<String>>,
        body: Json<CreateRunRequest>,
    ) -> Result<RunCreated, RunCreateError> {
        let principal = state.principal(&auth).await?;
        let streamed = body.0.stream;
        let Some(key) = sent_key(idempotency_key.0, request)? else {
            let answer = create_run(runs.clone(), principal.clone(), org.0, body.0).await?;
            return answer_created(&runs, &principal, streamed, Replayable { answer, replayed: false }).await;
        };
        let hash = request_hash("run_create", &body.0, &[("X-Switchyard-Org", org.0.as_deref())]);
        let once = IdempotentRequest::new(&principal, &key, "run_create", hash)?;
        let work = create_run(runs.clone(), principal.clone(), org.0, body.0);
        let created = state.idempotency.once(&once, work).await?;
        answer_created(&runs, &principal, streamed, created).await
    }

    /// The runs of the organization the caller may see, oldest first: their
    /// own, or all of them for owners and admins. Needs the `runs` scope.
    #[oai(path = "/v1/runs", method = "get", operation_id = "run_list")]
    #[expect(
        clippy::too_many_arguments,
        reason = "each query parameter is an argument: poem-openapi has no query structs"
    )]
    async fn run_list(
        &self,
        state: Data<&AppState>,
        runs: Data<&Runs>,
        auth: AnyCredential,
        /// With a session token: the organization whose runs to list.
        #[oai(name = "X-Switchyard-Org")]
        org: Header<Option<String>>,
        /// Only runs with this status.
        status: Query<Option<RunStatusName>>,
        /// Only runs this user (`usr_…`) or API key (`key_…`) started.
        #[oai(name = "principal")]
        started_by: Query<Option<String>>,
        /// Only runs created at or after this time (RFC 3339).
        since: Query<Option<DateTime<Utc>>>,
        /// Only runs of this session.
        session_id: Query<Option<String>>,
        limit: PageSize,
        cursor: PageCursor,
    ) -> Result<Ok200<RunList>, RunListError> {
        let principal = state.principal(&auth).await?;
        let wanted = RunsWanted {
            status: status.0.map(Into::into),
            principal: started_by.0.filter(|id| !id.is_empty()),
            since: since.0.map(|at| at.timestamp()),
            session_id: session_id.0.filter(|id| !id.is_empty()),
        };
        let page = runs.list(&principal, org.0.as_deref(), &wanted, cursor.as_deref(), limit.get()).await?;
        Ok(Ok200::Ok(Json(page.map(Run::from).into())))
    }

    /// One run, with its steps. Needs the `runs` scope.
    #[oai(path = "/v1/runs/:id", method = "get", operation_id = "run_get")]
    async fn run_get(
        &self,
        state: Data<&AppState>,
        runs: Data<&Runs>,
        auth: AnyCredential,
        id: Path<String>,
    ) -> Result<Ok200<Run>, RunGetError> {
        let principal = state.principal(&auth).await?;
        Ok(Ok200::Ok(Json(runs.get(&principal, &id.0).await?.into())))
    }

    /// Sends the outputs of client tool calls of a run in `requires_action`.
    /// Once every pending call is answered the run goes on, and this answers
    /// when it stops again. Needs the `runs` scope.
    #[oai(path = "/v1/runs/:id/tool-outputs", method = "post", operation_id = "run_submit_tool_outputs")]
    async fn run_submit_tool_outputs(
        &self,
        state: Data<&AppState>,
        runs: Data<&Runs>,
        auth: AnyCredential,
        id: Path<String>,
        body: Json<SubmitToolOutputsRequest>,
    ) -> Result<Ok200<Run>, RunToolOutputsError> {
        let principal = state.principal(&auth).await?;
        let run =
            runs.submit_tool_outputs(&principal, &id.0, body.0.into_outputs(), Wait::UntilStopped).await?;
        Ok(Ok200::Ok(Json(run.into())))
    }

    /// An approver's decision on a `paused` run: `approved` lets the tool
    /// call run (or the final answer stand); `rejected` tells the model who
    /// rejected the call and why (a rejected final answer blocks the run).
    /// Only an approver of the run may decide (403 otherwise), once per
    /// pause (409 when the run is not paused). The decision is journaled
    /// and written to the audit trail; this answers when the run stops or
    /// waits again. Needs the `runs` scope.
    #[oai(path = "/v1/runs/:id/resume", method = "post", operation_id = "run_resume")]
    async fn run_resume(
        &self,
        state: Data<&AppState>,
        runs: Data<&Runs>,
        auth: AnyCredential,
        id: Path<String>,
        body: Json<ResumeRunRequest>,
    ) -> Result<Ok200<Run>, RunResumeError> {
        let principal = state.principal(&auth).await?;
        let ResumeRunRequest { decision, reason } = body.0;
        let run = runs.resume(&principal, &id.0, decision.into(), reason, Wait::UntilStopped).await?;
        Ok(Ok200::Ok(Json(run.into())))
    }

    /// Cancels a run that has not ended. Cancelling a cancelled run returns
    /// it unchanged. Needs the `runs` scope.
    #[oai(path = "/v1/runs/:id/cancel", method = "post", operation_id = "run_cancel")]
    async fn run_cancel(
        &self,
        state: Data<&AppState>,
        runs: Data<&Runs>,
        auth: AnyCredential,
        id: Path<String>,
    ) -> Result<Ok200<Run>, RunCancelError> {
        let principal = state.principal(&auth).await?;
        Ok(Ok200::Ok(Json(runs.cancel(&principal, &id.0).await?.into())))
    }

    /// The run's events after `after` (or the SSE `Last-Event-ID`), as a
    /// JSON page; with `Accept: text/event-stream`, as server-sent events
    /// that replay what was missed and follow the run until it ends, with
    /// `: keep-alive` comments while it is quiet. Works on any replica for
    /// as long as the run is kept. Needs the `runs` scope.
    #[oai(path = "/v1/runs/:id/events", method = "get", operation_id = "run_events")]
    #[expect(
        clippy::too_many_arguments,
        reason = "each query parameter is an argument: poem-openapi has no query structs"
    )]
    async fn run_events(
        &self,
        request: &poem::Request,
        state: Data<&AppState>,
        runs: Data<&Runs>,
        auth: AnyCredential,
        id: Path<String>,
        /// Only events after this `seq` (0, the default, is from the start).
        #[oai(validator(minimum(value = "0")))]
        after: Query<Option<i64>>,
        /// The `id` of the last event received, as SSE clients send it on
        /// reconnecting; taken when `after` is not given.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<String>>,
        limit: PageSize,
    ) -> Result<RunEventsReply, RunEventsError> {
        let principal = state.principal(&auth).await?;
        let after = match (after.0, last_event_id.0.as_deref()) {
            (Some(after), _) => after,
            (None, None) => 0,
            (None, Some(text)) => {
                text.trim().parse::<i64>().ok().filter(|seq| *seq >= 0).ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::RequestMalformed,
                        "Last-Event-ID must be the id of an event of this run",
                    )
                    .param("Last-Event-ID")
                })?
            }
        };
        let wants_stream = request
            .headers()
            .get(poem::http::header::ACCEPT)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|accept| accept.contains("text/event-stream"));
        if wants_stream {
            return Ok(RunEventsReply::stream(runs.follow(&principal, &id.0, after).await?));
        }
        let (events, more) = runs.events(&principal, &id.0, after, limit.get()).await?;
        Ok(RunEventsReply::page(events, more))
    }
}

//! `/v1/chat/completions`, `/v1/embeddings` and `/v1/models`: OpenAI's wire
//! format over the gateway. Bodies are parsed once with serde (unknown fields
//! kept for pass-through); answers from OpenAI-compatible providers are sent
//! on as the bytes they arrived as.

use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, Stream, StreamExt};
use poem::http::HeaderValue;
use poem::web::Data;
use poem::{Body, IntoResponse, Request, RequestBody, Response};
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::{Json, ParsePayload, Payload};
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, OpenApi};
use serde::de::DeserializeOwned;
use switchyard_providers::fields;
use switchyard_providers::wire::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, EmbeddingInputs, EmbeddingList,
    EmbeddingRequest, MAX_CONTENT_CHARS, MAX_MESSAGES, Model, ModelList,
};
use tokio::time::Instant;

use crate::gateway::metering::{Caller, Estimate, Quota};
use crate::gateway::ticket::{Metered, Ticket};
use crate::gateway::{EventStream, Reply, Route};
use crate::http::credential::AnyCredential;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::request_id;
use crate::http::{ApiTags, Ok200};
use crate::kernel::principal::{Principal, Scope, Via};
use crate::operation_errors;
use crate::state::AppState;

#[derive(Default)]
pub struct GatewayApi;

operation_errors!(ChatCompletionError: 400, 401, 402, 403, 404, 429, 502, 504);
operation_errors!(EmbeddingError: 400, 401, 402, 403, 404, 429, 502, 504);
operation_errors!(ModelListError: 401, 403, 429);
operation_errors!(ModelGetError: 401, 403, 404, 429);

#[OpenApi(tag = "ApiTags::Gateway")]
impl GatewayApi {
    /// Creates a chat completion (OpenAI's format): the whole answer as JSON,
    /// or with `stream: true` as server-sent `chat.completion.chunk` events
    /// ending with `data: [DONE]`. Needs the `chat` scope.
    #[oai(path = "/v1/chat/completions", method = "post", operation_id = "chat_completion_create")]
    async fn chat_completion_create(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        /// With a session token: the organization to act and be metered in
        /// (one the user belongs to). API keys act in their own.
        #[oai(name = "X-Switchyard-Org")]
        org: Header<Option<String>>,
        body: OpenAiJson<ChatCompletionRequest>,
    ) -> Result<GatewayReply<ChatCompletion>, ChatCompletionError> {
        let started = Instant::now();
        let request = Arc::new(body.0);
        check_chat(&request)?;
        let metered = Metered::Chat(request.clone());
        let (route, ticket) =
            admit(&state, &auth, org.0.as_deref(), &request.model, started, metered, |route| {
                check_fields(&request.extra, fields::CHAT_FIELDS, route)?;
                Ok(Estimate::chat(&request, route))
            })
            .await?;
        let answered = match state.gateway.chat(&route, &request).await {
            Ok(answered) => answered,
            Err(err) => return Err(refuse(ticket, err.into()).into()),
        };
        let mut ticket = ticket.answered_by(&answered.target, answered.upstream);
        let quota = ticket.quota();
        Ok(match answered.value {
            Reply::Complete { body, usage } => {
                let body = ticket.completed(body, usage);
                ticket.finish(200);
                let timing = ServerTiming { upstream: answered.upstream, total: started.elapsed() };
                GatewayReply::json(body, quota, timing)
            }
            Reply::Stream(events) => GatewayReply::stream(
                sse_frames(events, request.wants_stream_usage(), state.gateway.stream_keepalive(), ticket),
                quota,
                ServerTiming { upstream: answered.upstream, total: started.elapsed() },
            ),
        })
    }

    /// Creates embeddings (OpenAI's format) for a string or an array of
    /// strings. Needs the `chat` scope.
    #[oai(path = "/v1/embeddings", method = "post", operation_id = "embedding_create")]
    async fn embedding_create(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        /// With a session token: the organization to act and be metered in
        /// (one the user belongs to). API keys act in their own.
        #[oai(name = "X-Switchyard-Org")]
        org: Header<Option<String>>,
        body: OpenAiJson<EmbeddingRequest>,
    ) -> Result<GatewayReply<EmbeddingList>, EmbeddingError> {
        let started = Instant::now();
        let request = Arc::new(body.0);
        check_embedding(&request)?;
        let metered = Metered::Embedding(request.clone());
        let (route, ticket) =
            admit(&state, &auth, org.0.as_deref(), &request.model, started, metered, |route| {
                check_fields(&request.extra, fields::EMBEDDING_FIELDS, route)?;
                Ok(Estimate::embedding(&request, route))
            })
            .await?;
        let answered = match state.gateway.embed(&route, &request).await {
            Ok(answered) => answered,
            Err(err) => return Err(refuse(ticket, err.into()).into()),
        };
        let mut ticket = ticket.answered_by(&answered.target, answered.upstream);
        let mut list: EmbeddingList = answered.value;
        ticket.embedded(&mut list);
        let quota = ticket.quota();
        let body = match serde_json::to_vec(&list) {
            Ok(body) => body,
            Err(e) => {
                return Err(refuse(ticket, ApiError::new(ErrorCode::ServerInternal, e.to_string())).into());
            }
        };
        ticket.finish(200);
        let timing = ServerTiming { upstream: answered.upstream, total: started.elapsed() };
        Ok(GatewayReply::json(Bytes::from(body), quota, timing))
    }

    /// Lists the models (routes) this credential may use, in OpenAI's list
    /// shape. Needs the `chat` scope.
    #[oai(path = "/v1/models", method = "get", operation_id = "model_list")]
    async fn model_list(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
    ) -> Result<Ok200<ModelList>, ModelListError> {
        let principal = state.principal(&auth).await?;
        principal.require_scope(Scope::Chat)?;
        let data = state
            .gateway
            .routes()
            .filter(|route| may_use(&principal, &route.name))
            .map(|route| model(route))
            .collect();
        Ok(Ok200::Ok(Json(ModelList { object: "list".to_owned(), data })))
    }

    /// One model (route) this credential may use. Needs the `chat` scope.
    #[oai(path = "/v1/models/:model", method = "get", operation_id = "model_get")]
    async fn model_get(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        /// A route name; OpenRouter-style names with `/` are accepted.
        model: Path<String>,
    ) -> Result<Ok200<Model>, ModelGetError> {
        let principal = state.principal(&auth).await?;
        principal.require_scope(Scope::Chat)?;
        let route = allowed_route(&state, &principal, &model.0)?;
        Ok(Ok200::Ok(Json(self::model(&route))))
    }
}

/// Checks the credential, its `chat` scope, right to the model and the org
/// it is metered in (a session names it as `org`), then
/// admits the request under the key's limits with the estimate `prepare`
/// makes for the route (or the refusal it finds). The request began at
/// `started`.
async fn admit(
    state: &AppState,
    auth: &AnyCredential,
    org: Option<&str>,
    model: &str,
    started: Instant,
    metered: Metered,
    prepare: impl FnOnce(&Route) -> Result<Estimate, ApiError>,
) -> Result<(Arc<Route>, Ticket), ApiError> {
    let principal = state.principal(auth).await?;
    principal.require_scope(Scope::Chat)?;
    let route = allowed_route(state, &principal, model)?;
    let caller = Caller::resolve(&state.db, &principal, org).await?;
    let estimate = prepare(&route)?;
    let admission = state.meter.admit(&state.db, &caller, estimate).await?;
    let in_flight = state.metrics.gateway().admitted();
    let ticket = Ticket::new(admission, in_flight, &caller, &route, metered, started);
    Ok((route, ticket))
}

fn model(route: &Route) -> Model {
    Model {
        id: route.name.clone(),
        object: "model".to_owned(),
        created: route.created,
        owned_by: route
            .targets
            .first()
            .map_or_else(|| "switchyard".to_owned(), |t| t.provider_name.to_string()),
    }
}

fn may_use(principal: &Principal, model: &str) -> bool {
    match &principal.via {
        Via::ApiKey { limits, .. } => limits.allows_model(model),
        Via::Session { .. } => true,
    }
}

/// The route for `model`, if it exists and the key may use it; both cases
/// answer the same 404 so a key cannot probe for routes it may not use.
fn allowed_route(state: &AppState, principal: &Principal, model: &str) -> Result<Arc<Route>, ApiError> {
    match state.gateway.route(model) {
        Some(route) if may_use(principal, model) => Ok(route.clone()),
        _ => {
            Err(ApiError::new(ErrorCode::GatewayModelNotFound, format!("The model `{model}` does not exist"))
                .param("model")
                .fix("List the models this key may use with GET /v1/models."))
        }
    }
}

/// Records the refused call and hands its error back.
fn refuse(ticket: Ticket, err: ApiError) -> ApiError {
    ticket.finish(err.status().as_u16());
    err
}

/// Refuses a field no target of the route may receive (see `switchyard_providers::fields`).
fn check_fields(
    extra: &serde_json::Map<String, serde_json::Value>,
    known: &[fields::KnownField],
    route: &Route,
) -> Result<(), ApiError> {
    match fields::refused(extra, known, |field| route.passes_through(field)) {
        None => Ok(()),
        Some(field) => Err(ApiError::new(
            ErrorCode::GatewayUnsupportedParameter,
            format!("`{field}` is not passed on to this model's providers"),
        )
        .param(field)
        .why("Fields that can change what a request costs or where its data is kept reach a provider only when the operator allows them.")
        .fix("Remove the field, or ask the operator to list it in the provider's pass_through setting.")),
    }
}

fn invalid(param: &str, message: String) -> ApiError {
    ApiError::new(ErrorCode::GatewayInvalidRequest, message).param(param)
}

/// API.md's limits: 1 to 100 messages of at most 100,000 characters each.
fn check_chat(request: &ChatCompletionRequest) -> Result<(), ApiError> {
    if request.model.trim().is_empty() {
        return Err(invalid("model", "`model` must name a model".to_owned()));
    }
    if request.messages.is_empty() || request.messages.len() > MAX_MESSAGES {
        return Err(invalid("messages", format!("`messages` must hold 1 to {MAX_MESSAGES} messages")));
    }
    for (index, message) in request.messages.iter().enumerate() {
        if !matches!(message.role.as_str(), "system" | "developer" | "user" | "assistant" | "tool") {
            return Err(invalid(
                &format!("messages[{index}].role"),
                format!("`messages[{index}].role` must be system, developer, user, assistant or tool"),
            ));
        }
        if message.content_chars() > MAX_CONTENT_CHARS {
            return Err(invalid(
                &format!("messages[{index}].content"),
                format!("`messages[{index}].content` is longer than {MAX_CONTENT_CHARS} characters"),
            ));
        }
    }
    if request.n.is_some_and(|n| n == 0 || n > 8) {
        return Err(invalid("n", "`n` must be 1 to 8".to_owned()));
    }
    Ok(())
}

fn check_embedding(request: &EmbeddingRequest) -> Result<(), ApiError> {
    if request.model.trim().is_empty() {
        return Err(invalid("model", "`model` must name a model".to_owned()));
    }
    let too_long = match EmbeddingInputs::parse(&request.input)
        .map_err(|message| invalid("input", message))?
    {
        EmbeddingInputs::Texts(texts) => texts.iter().any(|text| text.chars().count() > MAX_CONTENT_CHARS),
        EmbeddingInputs::Tokens(arrays) => arrays.iter().any(|ids| ids.len() > MAX_CONTENT_CHARS),
    };
    if too_long {
        return Err(invalid(
            "input",
            format!("each input must be at most {MAX_CONTENT_CHARS} characters (or token ids)"),
        ));
    }
    if request.encoding_format.as_deref().is_some_and(|f| f != "float" && f != "base64") {
        return Err(invalid("encoding_format", "`encoding_format` must be float or base64".to_owned()));
    }
    Ok(())
}

/// The SSE body: each chunk as `data: …\n\n`, then `data: [DONE]`. Clients
/// that asked for usage get a last usage chunk, the provider's or the
/// ticket's count when the provider sent none; others get none. An upstream
/// failure after the first byte ends the stream with an error event. Chunks that are
/// already waiting go out together, in one write. While the provider is
/// quiet, a `: keep-alive` comment goes out every `keepalive`: writing it is
/// how a client that went away is noticed, which drops the provider's stream.
fn sse_frames(
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
                        let body = serde_json::to_vec(&poem_openapi::types::ToJSON::to_json(&err.body()))
                            .unwrap_or_default();
                        push_frame(&mut batch, &body);
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
const MAX_BATCH_BYTES: usize = 64 * 1024;

fn push_frame(batch: &mut BytesMut, data: &[u8]) {
    batch.reserve(data.len() + 8);
    batch.extend_from_slice(b"data: ");
    batch.extend_from_slice(data);
    batch.extend_from_slice(b"\n\n");
}

/// `Server-Timing`: time spent waiting on the provider, and the gateway's own.
#[derive(Debug, Clone, Copy)]
struct ServerTiming {
    upstream: Duration,
    total: Duration,
}

impl ServerTiming {
    fn header(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "upstream;dur={:.3}, gateway;dur={:.3}",
            ms(self.upstream),
            ms(self.total.saturating_sub(self.upstream))
        )
    }
}

/// A gateway answer of type `T`: its JSON bytes, or for chat an event
/// stream, with the rate-limit and timing headers.
pub struct GatewayReply<T> {
    body: Body,
    content_type: &'static str,
    quota: Quota,
    timing: ServerTiming,
    answer: PhantomData<fn() -> T>,
}

/// The media types a gateway answer is documented with.
pub trait ReplyContent: Type {
    fn media_types() -> Vec<MetaMediaType> {
        vec![MetaMediaType { content_type: "application/json", schema: Self::schema_ref() }]
    }
}

impl ReplyContent for EmbeddingList {}

impl ReplyContent for ChatCompletion {
    fn media_types() -> Vec<MetaMediaType> {
        vec![
            MetaMediaType { content_type: "application/json", schema: Self::schema_ref() },
            MetaMediaType { content_type: "text/event-stream", schema: ChatCompletionChunk::schema_ref() },
        ]
    }
}

impl<T> GatewayReply<T> {
    fn json(body: Bytes, quota: Quota, timing: ServerTiming) -> Self {
        Self {
            body: Body::from_bytes(body),
            content_type: "application/json",
            quota,
            timing,
            answer: PhantomData,
        }
    }

    fn stream(
        frames: impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
        quota: Quota,
        timing: ServerTiming,
    ) -> Self {
        Self {
            body: Body::from_bytes_stream(frames),
            content_type: "text/event-stream",
            quota,
            timing,
            answer: PhantomData,
        }
    }
}

impl<T: Send> IntoResponse for GatewayReply<T> {
    fn into_response(self) -> Response {
        let mut response = Response::builder().content_type(self.content_type).body(self.body);
        let headers = response.headers_mut();
        if self.content_type == "text/event-stream" {
            headers.insert("cache-control", HeaderValue::from_static("no-cache"));
        }
        if let Ok(timing) = HeaderValue::from_str(&self.timing.header()) {
            headers.insert("server-timing", timing);
        }
        let mut put = |name: &'static str, value: u64| {
            headers.insert(name, HeaderValue::from(value));
        };
        if let Some((limit, remaining)) = self.quota.requests {
            put("x-ratelimit-limit", u64::from(limit));
            put("x-ratelimit-remaining", u64::from(remaining));
            put("x-ratelimit-reset", self.quota.reset_secs);
            put("x-ratelimit-limit-requests", u64::from(limit));
            put("x-ratelimit-remaining-requests", u64::from(remaining));
        }
        if let Some((limit, remaining)) = self.quota.tokens {
            put("x-ratelimit-limit-tokens", u64::from(limit));
            put("x-ratelimit-remaining-tokens", u64::from(remaining));
        }
        // OpenAI writes resets as durations; both limits share one window.
        if self.quota.requests.is_some() || self.quota.tokens.is_some() {
            let reset = HeaderValue::try_from(format!("{}s", self.quota.reset_secs));
            for (limited, name) in [
                (self.quota.requests.is_some(), "x-ratelimit-reset-requests"),
                (self.quota.tokens.is_some(), "x-ratelimit-reset-tokens"),
            ] {
                if let (true, Ok(reset)) = (limited, &reset) {
                    headers.insert(name, reset.clone());
                }
            }
        }
        response
    }
}

fn header(name: &str, description: &str, required: bool, schema: MetaSchemaRef) -> MetaHeader {
    MetaHeader {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        required,
        deprecated: false,
        schema,
    }
}

impl<T: ReplyContent + Send> ApiResponse for GatewayReply<T> {
    fn meta() -> MetaResponses {
        let count = || u64::schema_ref();
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The answer; for chat, server-sent events when `stream` is true.",
                status: Some(200),
                status_range: None,
                content: T::media_types(),
                headers: vec![
                    request_id::header_meta(),
                    header(
                        "Server-Timing",
                        "Time spent upstream and in the gateway, in ms.",
                        true,
                        String::schema_ref(),
                    ),
                    header(
                        "X-RateLimit-Limit",
                        "The key's requests per minute, when it has a limit.",
                        false,
                        count(),
                    ),
                    header("X-RateLimit-Remaining", "Requests left in the current minute.", false, count()),
                    header("X-RateLimit-Reset", "Seconds until the window has room again.", false, count()),
                    header(
                        "x-ratelimit-limit-requests",
                        "OpenAI's name for X-RateLimit-Limit.",
                        false,
                        count(),
                    ),
                    header(
                        "x-ratelimit-remaining-requests",
                        "OpenAI's name for X-RateLimit-Remaining.",
                        false,
                        count(),
                    ),
                    header(
                        "x-ratelimit-limit-tokens",
                        "The key's tokens per minute, when it has a limit.",
                        false,
                        count(),
                    ),
                    header(
                        "x-ratelimit-remaining-tokens",
                        "Tokens left in the current minute.",
                        false,
                        count(),
                    ),
                    header(
                        "x-ratelimit-reset-requests",
                        "OpenAI's form of X-RateLimit-Reset, as a duration such as `12s`.",
                        false,
                        String::schema_ref(),
                    ),
                    header(
                        "x-ratelimit-reset-tokens",
                        "When the token window has room again, as a duration such as `12s`.",
                        false,
                        String::schema_ref(),
                    ),
                ],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
        ChatCompletionChunk::register(registry);
    }
}

/// A JSON body parsed with serde, so fields the type does not name are kept
/// (for pass-through) instead of rejected; the spec shows `T`'s schema.
pub struct OpenAiJson<T>(pub T);

impl<T: Type> Payload for OpenAiJson<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        content_type
            .split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: DeserializeOwned + Send> ParsePayload for OpenAiJson<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = <Vec<u8> as poem::FromRequest>::from_request(request, body).await?;
        serde_json::from_slice(&data).map(OpenAiJson).map_err(|err| {
            let api = if err.is_syntax() || err.is_eof() {
                ApiError::new(ErrorCode::RequestMalformed, format!("The body is not valid JSON: {err}"))
            } else {
                ApiError::new(ErrorCode::GatewayInvalidRequest, format!("Invalid request body: {err}"))
            };
            // The error's own extensions replace the response's, so the
            // marker that it is already enveloped goes on the error.
            let mut err = poem::Error::from_response(api.into_response());
            err.set_data(crate::http::error::Enveloped);
            err
        })
    }
}

impl<'a, T: Type + DeserializeOwned + Send> ApiExtractor<'a> for OpenAiJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Self as Payload>::register(registry);
    }

    fn request_meta() -> Option<poem_openapi::registry::MetaRequest> {
        Some(poem_openapi::registry::MetaRequest {
            description: None,
            content: vec![MetaMediaType { content_type: Self::CONTENT_TYPE, schema: Self::schema_ref() }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match request.content_type() {
            Some(content_type) if Self::check_content_type(content_type) => {
                <Self as ParsePayload>::from_request(request, body).await
            }
            Some(content_type) => Err(poem_openapi::error::ContentTypeError::NotSupported {
                content_type: content_type.to_owned(),
            }
            .into()),
            None => Err(poem_openapi::error::ContentTypeError::ExpectContentType.into()),
        }
    }
}

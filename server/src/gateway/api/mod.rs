//! `/v1/chat/completions`, `/v1/embeddings` and `/v1/models`: OpenAI's wire
//! format over the gateway. Bodies are parsed once with serde (unknown fields
//! kept for pass-through); answers from OpenAI-compatible providers are sent
//! on as the bytes they arrived as.
//!
//! The handlers are thin: `admission` checks the credential, the body and
//! the key's limits and admits the call; `reply` and `sse` send the answer.

mod admission;
mod reply;
mod sse;

use std::sync::Arc;

use bytes::Bytes;
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use switchyard_providers::fields;
use switchyard_providers::wire::{
    ChatCompletion, ChatCompletionRequest, EmbeddingList, EmbeddingRequest, Model, ModelList,
};
use tokio::time::Instant;

use crate::gateway::metering::Estimate;
use crate::gateway::ticket::Metered;
use crate::gateway::{Reply, Route};
use crate::http::credential::AnyCredential;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::openai_json::OpenAiJson;
use crate::http::{ApiTags, Ok200};
use crate::kernel::principal::Scope;
use crate::operation_errors;
use crate::state::AppState;

use admission::{admit, allowed_route, check_chat, check_embedding, check_fields, may_use, refuse};
use reply::{GatewayReply, ServerTiming};
use sse::sse_frames;

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

//! Admission: who may call which route, what a body may hold, and the metered
//! admission of the call under the key's limits.

use std::sync::Arc;

use switchyard_providers::fields;
use switchyard_providers::wire::{
    ChatCompletionRequest, EmbeddingInputs, EmbeddingRequest, MAX_CONTENT_CHARS, MAX_MESSAGES,
};
use tokio::time::Instant;

use crate::gateway::Route;
use crate::gateway::metering::{Caller, Estimate};
use crate::gateway::ticket::{Metered, Ticket};
use crate::http::credential::AnyCredential;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::from_domain::model_not_found;
use crate::kernel::principal::{Principal, Scope, Via};
use crate::state::AppState;

/// Checks the credential, its `chat` scope, right to the model and the org
/// it is metered in (a session names it as `org`), then
/// admits the request under the key's limits with the estimate `prepare`
/// makes for the route (or the refusal it finds). The request began at
/// `started`.
pub(super) async fn admit(
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
    let at = state.clock.now();
    let admission = state.meter.admit(&state.db, &caller, estimate, at).await?;
    let in_flight = state.metrics.gateway().admitted();
    let ticket = Ticket::new(admission, in_flight, &caller, &route, metered, started, at);
    Ok((route, ticket))
}

pub(super) fn may_use(principal: &Principal, model: &str) -> bool {
    match &principal.via {
        Via::ApiKey { limits, .. } => limits.allows_model(model),
        Via::Session { .. } => true,
    }
}

/// The route for `model`, if it exists and the key may use it; both cases
/// answer the same 404 so a key cannot probe for routes it may not use.
pub(super) fn allowed_route(
    state: &AppState,
    principal: &Principal,
    model: &str,
) -> Result<Arc<Route>, ApiError> {
    match state.gateway.route(model) {
        Some(route) if may_use(principal, model) => Ok(route.clone()),
        _ => Err(model_not_found(model)),
    }
}

/// Records the refused call and hands its error back.
pub(super) fn refuse(ticket: Ticket, err: ApiError) -> ApiError {
    ticket.finish(err.status().as_u16());
    err
}

/// Refuses a field no target of the route may receive (see `switchyard_providers::fields`).
pub(super) fn check_fields(
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

pub(super) fn invalid(param: &str, message: String) -> ApiError {
    ApiError::new(ErrorCode::GatewayInvalidRequest, message).param(param)
}

/// API.md's limits: 1 to 100 messages of at most 100,000 characters each.
pub(super) fn check_chat(request: &ChatCompletionRequest) -> Result<(), ApiError> {
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

pub(super) fn check_embedding(request: &EmbeddingRequest) -> Result<(), ApiError> {
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

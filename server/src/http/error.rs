//! The one error envelope every response uses, and the stable error codes.
//!
//! Domain and storage code return their own error types; they are mapped to
//! [`ApiError`] once, and [`ApiError`] renders the wire [`ErrorBody`]. The
//! request id comes from the request scope (see [`crate::http::request_id`]),
//! so no handler has to thread it through.

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaMediaType, MetaResponse};
use poem_openapi::{Enum, Object};

use crate::http::request_id;
use crate::limits::Decision;

/// Stable `area.reason` error codes. The set is part of the contract: it is
/// the `ErrorCode` enum in `openapi/switchyard.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum ErrorCode {
    /// The request could not be parsed (malformed JSON, bad parameter).
    #[oai(rename = "request.malformed")]
    RequestMalformed,
    /// A field failed validation.
    #[oai(rename = "request.invalid")]
    RequestInvalid,
    /// No route matches the path.
    #[oai(rename = "request.not_found")]
    RequestNotFound,
    /// The path exists but not with this method.
    #[oai(rename = "request.method_not_allowed")]
    RequestMethodNotAllowed,
    /// A body was sent without a length.
    #[oai(rename = "request.length_required")]
    RequestLengthRequired,
    /// The body is larger than the endpoint accepts.
    #[oai(rename = "request.too_large")]
    RequestTooLarge,
    /// The body's media type is not one the endpoint accepts.
    #[oai(rename = "request.unsupported_media_type")]
    RequestUnsupportedMediaType,
    /// No credential was sent to an endpoint that needs one.
    #[oai(rename = "auth.missing_credentials")]
    AuthMissingCredentials,
    /// Wrong email or password (the two are not told apart).
    #[oai(rename = "auth.invalid_credentials")]
    AuthInvalidCredentials,
    /// The session token is malformed, expired or revoked.
    #[oai(rename = "auth.invalid_token")]
    AuthInvalidToken,
    /// The API key is unknown, revoked or expired.
    #[oai(rename = "auth.invalid_api_key")]
    AuthInvalidApiKey,
    /// The refresh token is unknown, expired or its session was revoked.
    #[oai(rename = "auth.invalid_refresh_token")]
    AuthInvalidRefreshToken,
    /// A spent refresh token was presented again; its session is now revoked.
    #[oai(rename = "auth.refresh_reused")]
    AuthRefreshReused,
    /// The operation needs a session token; API keys cannot do it.
    #[oai(rename = "auth.session_required")]
    AuthSessionRequired,
    /// A session token must name an organization (`X-Switchyard-Org`) for this.
    #[oai(rename = "auth.org_required")]
    AuthOrgRequired,
    /// The operation needs the password or second factor presented recently.
    #[oai(rename = "auth.reauthentication_required")]
    AuthReauthenticationRequired,
    /// An API key narrowed to one project cannot administer its organization.
    #[oai(rename = "auth.project_key_denied")]
    AuthProjectKeyDenied,
    /// The API key lacks the scope the operation needs.
    #[oai(rename = "auth.scope_denied")]
    AuthScopeDenied,
    /// The caller's role in the org does not allow the operation.
    #[oai(rename = "auth.role_denied")]
    AuthRoleDenied,
    /// An account with this email already exists.
    #[oai(rename = "auth.email_taken")]
    AuthEmailTaken,
    /// The password is too short, too long or too common.
    #[oai(rename = "auth.weak_password")]
    AuthWeakPassword,
    /// The two-factor code or recovery code is wrong.
    #[oai(rename = "auth.invalid_two_factor_code")]
    AuthInvalidTwoFactorCode,
    /// The two-factor code was already used in its window.
    #[oai(rename = "auth.totp_replayed")]
    AuthTotpReplayed,
    /// The login challenge is unknown, expired, used or out of attempts.
    #[oai(rename = "auth.invalid_challenge")]
    AuthInvalidChallenge,
    /// Two-factor authentication is already on.
    #[oai(rename = "auth.two_factor_already_enabled")]
    AuthTwoFactorAlreadyEnabled,
    /// Two-factor authentication is off.
    #[oai(rename = "auth.two_factor_not_enabled")]
    AuthTwoFactorNotEnabled,
    /// Enabling needs a setup started first.
    #[oai(rename = "auth.two_factor_setup_required")]
    AuthTwoFactorSetupRequired,
    /// The operation needs a verified email address.
    #[oai(rename = "auth.email_unverified")]
    AuthEmailUnverified,
    /// The email address is already verified.
    #[oai(rename = "auth.email_already_verified")]
    AuthEmailAlreadyVerified,
    /// The verification code is wrong, expired, used or out of attempts.
    #[oai(rename = "auth.invalid_verification_code")]
    AuthInvalidVerificationCode,
    /// The password-reset token is unknown, expired or already used.
    #[oai(rename = "auth.invalid_reset_token")]
    AuthInvalidResetToken,
    /// No live session with this id among the caller's.
    #[oai(rename = "auth.session_not_found")]
    AuthSessionNotFound,
    /// No such organization (or not one the caller belongs to).
    #[oai(rename = "org.not_found")]
    OrgNotFound,
    /// No member with this user id in the organization.
    #[oai(rename = "org.member_not_found")]
    OrgMemberNotFound,
    /// The user is already a member of the organization.
    #[oai(rename = "org.already_member")]
    OrgAlreadyMember,
    /// The change would leave the organization without an owner.
    #[oai(rename = "org.last_owner")]
    OrgLastOwner,
    /// The invitation token is unknown, expired, replaced or already used.
    #[oai(rename = "org.invalid_invitation")]
    OrgInvalidInvitation,
    /// The invitation is for another email address than the caller's.
    #[oai(rename = "org.invitation_email_mismatch")]
    OrgInvitationEmailMismatch,
    /// No pending invitation with this id in the organization.
    #[oai(rename = "org.invitation_not_found")]
    OrgInvitationNotFound,
    /// No such project in the caller's organizations.
    #[oai(rename = "project.not_found")]
    ProjectNotFound,
    /// No such API key among the caller's.
    #[oai(rename = "api_key.not_found")]
    ApiKeyNotFound,
    /// Too many requests from this client; see `Retry-After`.
    #[oai(rename = "rate_limit.exceeded")]
    RateLimitExceeded,
    /// Too many failed logins for this account from this client.
    #[oai(rename = "auth.too_many_failed_logins")]
    AuthTooManyFailedLogins,
    /// The chat or embeddings request is not valid (OpenAI's 400).
    #[oai(rename = "gateway.invalid_request")]
    GatewayInvalidRequest,
    /// The request sets a field this gateway does not pass on to providers.
    #[oai(rename = "gateway.unsupported_parameter")]
    GatewayUnsupportedParameter,
    /// No route serves this model name, or the key may not use it.
    #[oai(rename = "gateway.model_not_found")]
    GatewayModelNotFound,
    /// The provider refused the request; its status and message are kept.
    #[oai(rename = "gateway.upstream_rejected")]
    GatewayUpstreamRejected,
    /// Every target of the route failed.
    #[oai(rename = "gateway.upstream_error")]
    GatewayUpstreamError,
    /// The route's targets did not answer in time.
    #[oai(rename = "gateway.upstream_timeout")]
    GatewayUpstreamTimeout,
    /// A spend budget or daily cost cap would be exceeded.
    #[oai(rename = "billing.budget_exceeded")]
    BillingBudgetExceeded,
    /// No run with this id that the caller may see.
    #[oai(rename = "run.not_found")]
    RunNotFound,
    /// Tool outputs were sent to a run that is not waiting for them.
    #[oai(rename = "run.not_awaiting_tool_outputs")]
    RunNotAwaitingToolOutputs,
    /// A tool output names a call the run never made.
    #[oai(rename = "run.unknown_tool_call")]
    RunUnknownToolCall,
    /// A tool output names a call that already has its result.
    #[oai(rename = "run.tool_call_already_answered")]
    RunToolCallAlreadyAnswered,
    /// The run already completed or failed, so it cannot be cancelled.
    #[oai(rename = "run.finished")]
    RunFinished,
    /// No session of runs with this id that the caller may see.
    #[oai(rename = "session.not_found")]
    SessionNotFound,
    /// The session already has a run that is not over.
    #[oai(rename = "run.session_busy")]
    RunSessionBusy,
    /// The session is shared with the caller to read only: no runs in it.
    #[oai(rename = "session.read_only")]
    SessionReadOnly,
    /// Only the session's creator, or an owner or admin of its org, may do this.
    #[oai(rename = "session.creator_only")]
    SessionCreatorOnly,
    /// A browser page on an origin not in `[cors] allowed_origins` tried to
    /// open a WebSocket.
    #[oai(rename = "request.origin_not_allowed")]
    RequestOriginNotAllowed,
    /// A WebSocket connection already follows as many runs as it may.
    #[oai(rename = "run.too_many_followed")]
    RunTooManyFollowed,
    /// A user named to share a session with is not a member of its org.
    #[oai(rename = "session.not_org_member")]
    SessionNotOrgMember,
    /// An approval was sent for a run that is not paused.
    #[oai(rename = "run.not_paused")]
    RunNotPaused,
    /// Only an approver of the run may decide on it.
    #[oai(rename = "run.not_an_approver")]
    RunNotAnApprover,
    /// The run ended: a rule of its route's policy refused it.
    #[oai(rename = "run.blocked")]
    RunBlocked,
    /// The run ended: another step would go past its `max_steps`.
    #[oai(rename = "run.max_steps_exceeded")]
    RunMaxStepsExceeded,
    /// The run ended: its next model call could cost more than `max_cost_usd` leaves.
    #[oai(rename = "run.max_cost_exceeded")]
    RunMaxCostExceeded,
    /// The run ended: no client tool output came in time.
    #[oai(rename = "run.client_tool_timeout")]
    RunClientToolTimeout,
    /// The run ended: the API key that created it was revoked or expired.
    #[oai(rename = "run.key_revoked")]
    RunKeyRevoked,
    /// The run ended: the user who created it left its organization.
    #[oai(rename = "run.creator_left_org")]
    RunCreatorLeftOrg,
    /// The `Idempotency-Key` was already used with another request.
    #[oai(rename = "idempotency.key_reused")]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` is still being answered.
    #[oai(rename = "idempotency.in_progress")]
    IdempotencyInProgress,
    /// The server is up but cannot serve traffic yet.
    #[oai(rename = "server.not_ready")]
    ServerNotReady,
    /// An unexpected failure inside the server.
    #[oai(rename = "server.internal")]
    ServerInternal,
}

/// The broad class of an error, as OpenAI clients read `error.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ErrorType {
    InvalidRequestError,
    AuthenticationError,
    PermissionError,
    NotFoundError,
    RateLimitError,
    ApiError,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            Self::RequestMalformed => StatusCode::BAD_REQUEST,
            Self::RequestInvalid => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RequestNotFound => StatusCode::NOT_FOUND,
            Self::RequestMethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestLengthRequired => StatusCode::LENGTH_REQUIRED,
            Self::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestUnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::AuthMissingCredentials
            | Self::AuthInvalidCredentials
            | Self::AuthInvalidToken
            | Self::AuthInvalidApiKey
            | Self::AuthInvalidRefreshToken
            | Self::AuthRefreshReused
            | Self::AuthInvalidTwoFactorCode
            | Self::AuthTotpReplayed
            | Self::AuthInvalidChallenge => StatusCode::UNAUTHORIZED,
            Self::AuthTwoFactorAlreadyEnabled
            | Self::AuthTwoFactorNotEnabled
            | Self::AuthTwoFactorSetupRequired => StatusCode::CONFLICT,
            Self::AuthSessionRequired
            | Self::AuthOrgRequired
            | Self::AuthProjectKeyDenied
            | Self::AuthReauthenticationRequired
            | Self::AuthScopeDenied
            | Self::AuthRoleDenied => StatusCode::FORBIDDEN,
            Self::AuthEmailUnverified => StatusCode::FORBIDDEN,
            Self::AuthEmailAlreadyVerified => StatusCode::CONFLICT,
            Self::AuthInvalidVerificationCode => StatusCode::UNPROCESSABLE_ENTITY,
            Self::AuthInvalidResetToken => StatusCode::UNAUTHORIZED,
            Self::AuthEmailTaken => StatusCode::CONFLICT,
            Self::AuthWeakPassword => StatusCode::UNPROCESSABLE_ENTITY,
            Self::OrgNotFound
            | Self::ApiKeyNotFound
            | Self::OrgMemberNotFound
            | Self::OrgInvitationNotFound
            | Self::ProjectNotFound
            | Self::AuthSessionNotFound => StatusCode::NOT_FOUND,
            Self::OrgAlreadyMember | Self::OrgLastOwner => StatusCode::CONFLICT,
            Self::OrgInvalidInvitation => StatusCode::UNAUTHORIZED,
            Self::OrgInvitationEmailMismatch => StatusCode::FORBIDDEN,
            Self::RateLimitExceeded | Self::AuthTooManyFailedLogins => StatusCode::TOO_MANY_REQUESTS,
            Self::GatewayInvalidRequest
            | Self::GatewayUnsupportedParameter
            | Self::GatewayUpstreamRejected => StatusCode::BAD_REQUEST,
            Self::GatewayModelNotFound => StatusCode::NOT_FOUND,
            Self::GatewayUpstreamError => StatusCode::BAD_GATEWAY,
            Self::GatewayUpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::BillingBudgetExceeded => StatusCode::PAYMENT_REQUIRED,
            Self::RunNotFound => StatusCode::NOT_FOUND,
            Self::RunUnknownToolCall => StatusCode::BAD_REQUEST,
            Self::RunNotAwaitingToolOutputs
            | Self::RunToolCallAlreadyAnswered
            | Self::RunFinished
            | Self::RunNotPaused
            | Self::RunSessionBusy => StatusCode::CONFLICT,
            Self::SessionNotFound => StatusCode::NOT_FOUND,
            Self::SessionReadOnly | Self::SessionCreatorOnly => StatusCode::FORBIDDEN,
            Self::SessionNotOrgMember => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RunNotAnApprover | Self::RunBlocked => StatusCode::FORBIDDEN,
            Self::RequestOriginNotAllowed => StatusCode::FORBIDDEN,
            Self::RunTooManyFollowed => StatusCode::CONFLICT,
            Self::RunMaxStepsExceeded | Self::RunMaxCostExceeded => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RunClientToolTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::RunKeyRevoked | Self::RunCreatorLeftOrg => StatusCode::FORBIDDEN,
            Self::IdempotencyKeyReused | Self::IdempotencyInProgress => StatusCode::CONFLICT,
            Self::ServerNotReady => StatusCode::SERVICE_UNAVAILABLE,
            Self::ServerInternal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The class follows from the status, so the two can never disagree.
    pub fn error_type(self) -> ErrorType {
        ErrorType::for_status(self.status())
    }

    /// The code poem's own errors (routing, extraction, body limits) map to.
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_REQUEST => Self::RequestMalformed,
            StatusCode::UNAUTHORIZED => Self::AuthMissingCredentials,
            StatusCode::NOT_FOUND => Self::RequestNotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::RequestMethodNotAllowed,
            StatusCode::LENGTH_REQUIRED => Self::RequestLengthRequired,
            StatusCode::PAYLOAD_TOO_LARGE => Self::RequestTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::RequestUnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => Self::RequestInvalid,
            StatusCode::SERVICE_UNAVAILABLE => Self::ServerNotReady,
            s if s.is_client_error() => Self::RequestMalformed,
            _ => Self::ServerInternal,
        }
    }
}

impl ErrorType {
    /// OpenAI's error type for a status, so the two cannot disagree.
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::UNAUTHORIZED => ErrorType::AuthenticationError,
            StatusCode::FORBIDDEN => ErrorType::PermissionError,
            StatusCode::NOT_FOUND => ErrorType::NotFoundError,
            StatusCode::TOO_MANY_REQUESTS => ErrorType::RateLimitError,
            status if status.is_server_error() => ErrorType::ApiError,
            _ => ErrorType::InvalidRequestError,
        }
    }
}

/// The error envelope: readable by OpenAI SDKs (`error.message`) and by
/// FastAPI-style clients (`detail`).
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// The same text as `error.message`.
    pub detail: String,
}

/// What went wrong, why, and how to fix it.
#[derive(Debug, Clone, Object)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    #[oai(rename = "type")]
    pub error_type: ErrorType,
    pub message: String,
    #[oai(nullable)]
    pub why: Option<String>,
    #[oai(nullable)]
    pub fix: Option<String>,
    #[oai(nullable)]
    pub param: Option<String>,
    pub request_id: String,
}

/// An error on its way to the wire. Build one with [`ApiError::new`] and the
/// `why`/`fix`/`param` setters; the status follows from the code.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub why: Option<String>,
    pub fix: Option<String>,
    pub param: Option<String>,
    /// The limit that refused the request, for the rate-limit headers
    /// (boxed: errors travel in `Result`s and should stay small).
    pub rate_limit: Option<Box<Decision>>,
    /// Set only for [`ErrorCode::GatewayUpstreamRejected`], which keeps the
    /// provider's own 4xx status.
    pub status_override: Option<StatusCode>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            why: None,
            fix: None,
            param: None,
            rate_limit: None,
            status_override: None,
        }
    }

    pub fn why(mut self, why: impl Into<String>) -> Self {
        self.why = Some(why.into());
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// A 429 for a refused `decision`, with `Retry-After` and `X-RateLimit-*`.
    pub fn rate_limited(code: ErrorCode, decision: Decision) -> Self {
        let wait = decision.retry_after().map_or(1, |d| d.as_secs().max(1));
        let mut err = Self::new(code, "Too many requests")
            .why(match code {
                ErrorCode::AuthTooManyFailedLogins => {
                    "Too many failed logins for this account from this address."
                }
                _ => "This address sent too many requests to this endpoint.",
            })
            .fix(format!("Retry after {wait} seconds (see Retry-After)."));
        err.rate_limit = Some(Box::new(decision));
        err
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status_override = Some(status);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status_override.unwrap_or_else(|| self.code.status())
    }

    /// Renders the envelope, stamped with the current request's id.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                error_type: ErrorType::for_status(self.status()),
                message: self.message.clone(),
                why: self.why.clone(),
                fix: self.fix.clone(),
                param: self.param.clone(),
                request_id: request_id::current().unwrap_or_default(),
            },
            detail: self.message.clone(),
        }
    }

    /// The envelope as JSON text. poem-openapi renders every `Object` as a
    /// JSON value; the logged `null` is for the day it does not.
    pub fn body_json(&self) -> String {
        match poem_openapi::types::ToJSON::to_json(&self.body()) {
            Some(json) => json.to_string(),
            None => {
                tracing::error!(code = ?self.code, "the error envelope rendered as no JSON value");
                serde_json::Value::Null.to_string()
            }
        }
    }
}

/// Marks a response that already carries the envelope, so the envelope
/// middleware passes it through untouched.
#[derive(Debug, Clone, Copy)]
pub struct Enveloped;

impl poem::IntoResponse for ApiError {
    fn into_response(self) -> poem::Response {
        let mut resp = poem::Response::builder()
            .status(self.status())
            .content_type("application/json; charset=utf-8")
            .body(self.body_json());
        if let Some(decision) = &self.rate_limit {
            decision.write_headers(resp.headers_mut());
        }
        resp.set_data(Enveloped);
        resp
    }
}

/// The spec entry for one error status of an operation: the envelope as JSON
/// plus the `X-Request-Id` header every response carries.
pub fn error_response_meta(status: u16) -> MetaResponse {
    let description = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    MetaResponse {
        description,
        status: Some(status),
        status_range: None,
        content: vec![MetaMediaType {
            content_type: "application/json; charset=utf-8",
            schema: <Json<ErrorBody> as poem_openapi::payload::Payload>::schema_ref(),
        }],
        headers: {
            let mut headers = vec![request_id::header_meta()];
            headers.extend(rate_limit_headers_meta(status == 429));
            headers
        },
    }
}

/// `Retry-After` and `X-RateLimit-*`, documented on every 429.
/// `X-RateLimit-*`: on a 429 always, with `Retry-After`; otherwise whenever
/// the request presented a credential.
pub fn rate_limit_headers_meta(limited: bool) -> Vec<poem_openapi::registry::MetaHeader> {
    let retry_after = ("Retry-After", "Seconds to wait before retrying.");
    let headers = [
        ("X-RateLimit-Limit", "Requests allowed in the window."),
        ("X-RateLimit-Remaining", "Requests left in the window."),
        ("X-RateLimit-Reset", "Seconds until the window has room again."),
    ];
    let (required, sent): (bool, Vec<_>) = if limited {
        (true, std::iter::once(retry_after).chain(headers).collect())
    } else {
        (false, headers.to_vec())
    };
    sent.into_iter()
        .map(|(name, description)| poem_openapi::registry::MetaHeader {
            name: name.to_owned(),
            description: Some(description.to_owned()),
            required,
            deprecated: false,
            schema: <u64 as poem_openapi::types::Type>::schema_ref(),
        })
        .collect()
}

#[macro_export]
macro_rules! operation_errors {
    ($(#[$meta:meta])* $name:ident: $($status:literal),+ $(,)?) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $name(pub $crate::http::error::ApiError);

        impl $name {
            pub const STATUSES: &'static [u16] = &[$($status),+];
        }

        impl From<$crate::http::error::ApiError> for $name {
            fn from(err: $crate::http::error::ApiError) -> Self {
                debug_assert!(
                    Self::STATUSES.contains(&err.status().as_u16()),
                    "{} does not declare status {} ({:?})",
                    stringify!($name),
                    err.status(),
                    err.code,
                );
                Self(err)
            }
        }

        impl From<$crate::kernel::error::DomainError> for $name {
            fn from(err: $crate::kernel::error::DomainError) -> Self {
                $crate::http::error::ApiError::from(err).into()
            }
        }

        impl poem_openapi::ApiResponse for $name {
            fn meta() -> poem_openapi::registry::MetaResponses {
                poem_openapi::registry::MetaResponses {
                    responses: Self::STATUSES
                        .iter()
                        .map(|status| $crate::http::error::error_response_meta(*status))
                        .collect(),
                }
            }

            fn register(registry: &mut poem_openapi::registry::Registry) {
                <$crate::http::error::ErrorBody as poem_openapi::types::Type>::register(registry);
            }
        }

        impl poem::IntoResponse for $name {
            fn into_response(self) -> poem::Response {
                poem::IntoResponse::into_response(self.0)
            }
        }

        impl From<$name> for poem::Error {
            fn from(err: $name) -> Self {
                let mut error = poem::Error::from_response(poem::IntoResponse::into_response(err));
                // poem replaces the response's extensions with the error's.
                error.set_data($crate::http::error::Enveloped);
                error
            }
        }
    };
}

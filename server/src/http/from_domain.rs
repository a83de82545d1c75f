//! The one place domain errors become wire errors.

use poem::http::StatusCode;

use crate::gateway::{Budget, GatewayError, Refusal};
use crate::http::error::{ApiError, ErrorCode};
use crate::identity::SECOND_FACTOR_MAX_ATTEMPTS;
use crate::kernel::error::{DomainError, Resource};
use crate::limits::Decision;
use crate::runs::model::RunFailure;
use switchyard_providers::price::format_usd_micros;

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::Invalid { param, message } => {
                ApiError::new(ErrorCode::RequestInvalid, format!("Invalid {param}: {message}")).param(param)
            }
            DomainError::EmailTaken => {
                ApiError::new(ErrorCode::AuthEmailTaken, "An account with this email exists")
                    .param("email")
                    .fix("Log in instead, or reset the password if it is forgotten.")
            }
            DomainError::WeakPassword { param, why } => ApiError::new(ErrorCode::AuthWeakPassword, "Password too weak")
                .param(param)
                .why(why)
                .fix("Use 8 to 128 characters that are not a commonly used password."),
            DomainError::InvalidCredentials => {
                ApiError::new(ErrorCode::AuthInvalidCredentials, "Invalid email or password")
            }
            DomainError::InvalidToken => {
                ApiError::new(ErrorCode::AuthInvalidToken, "Invalid or expired session token")
                    .fix("Refresh the session with POST /v1/auth/refresh, or log in again.")
            }
            DomainError::InvalidApiKey => {
                ApiError::new(ErrorCode::AuthInvalidApiKey, "Invalid or missing API key")
                    .why("The key is unknown, revoked or expired.")
                    .fix("Check the key, or mint a new one with POST /v1/api-keys.")
            }
            DomainError::InvalidRefreshToken => {
                ApiError::new(ErrorCode::AuthInvalidRefreshToken, "Invalid or expired refresh token")
                    .param("refresh_token")
                    .fix("Log in again.")
            }
            DomainError::RefreshReused => ApiError::new(
                ErrorCode::AuthRefreshReused,
                "Refresh token already used",
            )
            .param("refresh_token")
            .why("A refresh token works once; using it again suggests it leaked, so the session was revoked.")
            .fix("Log in again."),
            DomainError::SessionRequired => {
                ApiError::new(ErrorCode::AuthSessionRequired, "This operation needs a session token")
                    .why("API keys cannot manage credentials or organizations.")
                    .fix("Call it with the session token from POST /v1/auth/login.")
            }
            DomainError::ProjectKeyDenied => ApiError::new(
                ErrorCode::AuthProjectKeyDenied,
                "This API key is narrowed to one project and cannot administer the organization",
            )
            .why("A key minted with project_id acts only on that project's objects.")
            .fix("Use a key that is not narrowed to a project, or a session of an owner or admin."),
            DomainError::ReauthenticationRequired(window) => ApiError::new(
                ErrorCode::AuthReauthenticationRequired,
                "This needs your password or second factor again",
            )
            .why(format!(
                "Turning on two-factor login and minting API keys need the password or second factor presented within the last {}.",
                if window > 0 && window % 60 == 0 { format!("{} minutes", window / 60) } else { format!("{window} seconds") }
            ))
            .fix("Call POST /v1/auth/reauthenticate with your password (or a two-factor code), then retry."),
            DomainError::OrgRequired => ApiError::new(
                ErrorCode::AuthOrgRequired,
                "A session token must name the organization to act in",
            )
            .param("X-Switchyard-Org")
            .why("Gateway calls are metered and capped in one organization; a session belongs to none.")
            .fix("Send X-Switchyard-Org with the id of an organization you belong to, or use an API key."),
            DomainError::ScopeDenied(scope) => {
                ApiError::new(ErrorCode::AuthScopeDenied, format!("The API key lacks the `{scope}` scope"))
                    .fix(format!("Use a key with the `{scope}` scope."))
            }
            DomainError::RoleDenied => {
                ApiError::new(ErrorCode::AuthRoleDenied, "Your role in this organization does not allow this")
            }
            DomainError::TwoFactorAlreadyEnabled => ApiError::new(
                ErrorCode::AuthTwoFactorAlreadyEnabled,
                "Two-factor authentication is already on",
            )
            .fix("Disable it first to set up a new authenticator."),
            DomainError::TwoFactorNotEnabled => {
                ApiError::new(ErrorCode::AuthTwoFactorNotEnabled, "Two-factor authentication is off")
            }
            DomainError::TwoFactorSetupRequired => {
                ApiError::new(ErrorCode::AuthTwoFactorSetupRequired, "No two-factor setup in progress")
                    .fix("Call POST /v1/auth/2fa/setup, add the secret to an authenticator, then enable.")
            }
            DomainError::InvalidTwoFactorCode => {
                ApiError::new(ErrorCode::AuthInvalidTwoFactorCode, "Wrong two-factor code")
                    .param("code")
                    .fix("Enter the current code from the authenticator app, or an unused recovery code.")
            }
            DomainError::TotpReplayed => {
                ApiError::new(ErrorCode::AuthTotpReplayed, "Two-factor code already used")
                    .param("code")
                    .why("Each code works once.")
                    .fix("Wait for the authenticator to show the next code.")
            }
            DomainError::InvalidChallenge => {
                ApiError::new(ErrorCode::AuthInvalidChallenge, "Invalid or expired login challenge")
                    .param("challenge_token")
                    .fix("Log in with email and password again.")
            }
            DomainError::EmailUnverified => {
                ApiError::new(ErrorCode::AuthEmailUnverified, "Verify your email address first")
                    .why("This server requires a verified email address for this operation.")
                    .fix("Enter the code mailed to you at POST /v1/auth/verify-email, or request a new one at POST /v1/auth/resend-verification.")
            }
            DomainError::EmailAlreadyVerified => {
                ApiError::new(ErrorCode::AuthEmailAlreadyVerified, "The email address is already verified")
            }
            DomainError::InvalidVerificationCode => {
                ApiError::new(ErrorCode::AuthInvalidVerificationCode, "Wrong or expired verification code")
                    .param("code")
                    .why("A code works once, for 10 minutes, and tolerates 5 wrong tries.")
                    .fix("Check the latest mail, or request a new code at POST /v1/auth/resend-verification.")
            }
            DomainError::InvalidResetToken => {
                ApiError::new(ErrorCode::AuthInvalidResetToken, "Invalid or expired password-reset token")
                    .param("token")
                    .why("A reset token works once, within 30 minutes of the request.")
                    .fix("Request a new one at POST /v1/auth/password-reset.")
            }
            DomainError::TooManySecondFactorAttempts(retry_after) => ApiError::rate_limited(
                ErrorCode::AuthTooManyFailedLogins,
                Decision::Limited {
                    limit: u32::try_from(SECOND_FACTOR_MAX_ATTEMPTS).unwrap_or(u32::MAX),
                    retry_after,
                },
            )
            .why("This account had too many second-factor attempts in the last 15 minutes, from any address.")
            .fix("Wait for Retry-After; if these attempts were not yours, change your password."),
            DomainError::QuotaSpent { limit, window_secs, why } => ApiError::rate_limited(
                ErrorCode::RateLimitExceeded,
                Decision::Limited { limit, retry_after: std::time::Duration::from_secs(window_secs) },
            )
            .why(why),
            DomainError::ResendTooSoon(retry_after) => ApiError::rate_limited(
                ErrorCode::RateLimitExceeded,
                Decision::Limited { limit: 1, retry_after },
            )
            .why("A verification mail went to this address less than a minute ago."),
            DomainError::AlreadyMember => {
                ApiError::new(ErrorCode::OrgAlreadyMember, "Already a member of this organization")
                    .param("email")
                    .fix("Change their role with PATCH /v1/orgs/{id}/members/{user_id} instead.")
            }
            DomainError::InvalidInvitation => {
                ApiError::new(ErrorCode::OrgInvalidInvitation, "Invalid or expired invitation")
                    .param("token")
                    .why("An invitation works once, within 7 days; inviting the address again replaces it.")
                    .fix("Ask an owner or admin of the organization to invite you again.")
            }
            DomainError::InvitationEmailMismatch => {
                ApiError::new(ErrorCode::OrgInvitationEmailMismatch, "This invitation is for another email address")
                    .param("token")
                    .fix("Sign in to the account with the invited address, or register one with it.")
            }
            DomainError::LastOwner => {
                ApiError::new(ErrorCode::OrgLastOwner, "The organization would have no owner left")
                    .fix("Make another member an owner first.")
            }
            DomainError::ModelNotFound(model) => model_not_found(&model),
            DomainError::RunNotAwaitingToolOutputs(status) => ApiError::new(
                ErrorCode::RunNotAwaitingToolOutputs,
                format!("The run is {status}, not waiting for tool outputs"),
            )
            .why("Tool outputs are taken while a run's status is requires_action.")
            .fix("Read the run with GET /v1/runs/{id}; send outputs for the calls in pending_tool_calls."),
            DomainError::UnknownToolCall(id) => {
                ApiError::new(ErrorCode::RunUnknownToolCall, format!("The run made no tool call `{id}`"))
                    .param("tool_outputs")
                    .fix("Answer the ids listed in the run's pending_tool_calls.")
            }
            DomainError::ToolCallAlreadyAnswered(id) => ApiError::new(
                ErrorCode::RunToolCallAlreadyAnswered,
                format!("The tool call `{id}` already has its output"),
            )
            .param("tool_outputs")
            .why("Each tool call is answered once."),
            DomainError::RunFinished(status) => {
                ApiError::new(ErrorCode::RunFinished, format!("The run already ended ({status})"))
                    .why("Only a run that has not completed or failed can be cancelled.")
            }
            DomainError::RunNotPaused(status) => {
                ApiError::new(ErrorCode::RunNotPaused, format!("The run is {status}, not paused"))
                    .why("Approvers decide while a run's status is paused.")
                    .fix("Read the run with GET /v1/runs/{id}; its pending_approval says what waits.")
            }
            DomainError::SessionBusy => {
                ApiError::new(ErrorCode::RunSessionBusy, "The session has a run that is not over")
                    .param("session_id")
                    .why("A session runs one run at a time, so that each starts from the answers before it.")
                    .fix("Wait for the session's active_run_id to stop (or cancel it), then send the message.")
            }
            DomainError::SessionReadOnly => {
                ApiError::new(ErrorCode::SessionReadOnly, "This session is shared with you to read only")
                    .why("It is shared with permission read: you may read its history and its runs, not start runs in it or act on them.")
                    .fix("Ask its creator, or an owner or admin of the organization, to share it with permission continue.")
            }
            DomainError::SessionCreatorOnly => ApiError::new(
                ErrorCode::SessionCreatorOnly,
                "Only the session's creator, or an owner or admin of its organization, may do this",
            )
            .why("A session shared with you lets you read it, and with permission continue start runs in it; deleting it and choosing whom it is shared with stay with its creator."),
            DomainError::NotOrgMember(who) => ApiError::new(
                ErrorCode::SessionNotOrgMember,
                format!("{who:?} is not a member of the session's organization"),
            )
            .param("members")
            .fix("Name members of the organization, by user id or email; GET /v1/orgs/{id}/members lists them."),
            DomainError::NotAnApprover => {
                ApiError::new(ErrorCode::RunNotAnApprover, "Only an approver of the run may decide on it")
                    .why("A run's approvers are those it names and its route's policy names; a run with none is decided by the owners and admins of its organization.")
            }
            DomainError::IdempotencyKeyReused => ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "This Idempotency-Key was already used with another request",
            )
            .param("Idempotency-Key")
            .why("A key stands for one request: sent again with the same body (and X-Switchyard-Org), it replays the first answer.")
            .fix("Send a new key with a new request."),
            DomainError::IdempotencyInProgress(waited_secs) => ApiError::new(
                ErrorCode::IdempotencyInProgress,
                "The first request with this Idempotency-Key is still in progress",
            )
            .param("Idempotency-Key")
            .why(format!("It had not finished after the {waited_secs} seconds a repeat waits for it."))
            .fix("Retry later with the same key and body to get its answer."),
            DomainError::NotFound(resource) => {
                let code = match resource {
                    Resource::Organization => ErrorCode::OrgNotFound,
                    Resource::ApiKey => ErrorCode::ApiKeyNotFound,
                    Resource::Member => ErrorCode::OrgMemberNotFound,
                    Resource::Invitation => ErrorCode::OrgInvitationNotFound,
                    Resource::Project => ErrorCode::ProjectNotFound,
                    Resource::Session => ErrorCode::AuthSessionNotFound,
                    Resource::Run => ErrorCode::RunNotFound,
                    Resource::RunSession => ErrorCode::SessionNotFound,
                };
                ApiError::new(code, format!("No such {resource}"))
            }
            DomainError::Store(err) => internal(&err),
            DomainError::Internal(err) => internal(&err),
        }
    }
}

fn internal(err: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %err, "internal error");
    ApiError::new(ErrorCode::ServerInternal, "Internal server error")
        .why("The server hit an unexpected condition; it has been logged.")
        .fix("Retry later; if it persists, report the request id.")
}

impl From<GatewayError> for ApiError {
    fn from(err: GatewayError) -> Self {
        match err {
            GatewayError::Rejected { provider, status, message } => {
                let kept = StatusCode::from_u16(status)
                    .ok()
                    .filter(|s| s.as_u16() == 404)
                    .unwrap_or(StatusCode::BAD_REQUEST);
                if matches!(status, 401 | 403) {
                    return ApiError::new(
                        ErrorCode::GatewayUpstreamError,
                        format!("Provider {provider} refused the gateway's credentials"),
                    )
                    .why(message)
                    .fix("The operator should check the provider's api_key_env.");
                }
                ApiError::new(ErrorCode::GatewayUpstreamRejected, message)
                    .why(format!("Provider {provider} refused the request with status {status}."))
                    .with_status(kept)
            }
            GatewayError::Exhausted { last, provider } => exhausted(&provider, &last),
            GatewayError::Timeout => ApiError::new(
                ErrorCode::GatewayUpstreamTimeout,
                "The model's providers did not answer in time",
            )
            .fix("Retry, or ask for fewer tokens."),
            GatewayError::Unsupported(what) => ApiError::new(ErrorCode::GatewayInvalidRequest, what)
                .fix("Use a model whose provider supports this operation."),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::RateLimited { kind, limit, retry_after } => key_rate_limited(kind, limit, retry_after),
            Refusal::BudgetExceeded { what, budget_micros, spent_micros } => {
                let (spent, budget) = (format_usd_micros(spent_micros), format_usd_micros(budget_micros));
                let (message, why, fix) = match what {
                    Budget::Key => (
                        "The key's spend budget would be exceeded",
                        format!(
                            "The key has spent {spent} of its {budget} USD budget, counting requests still running."
                        ),
                        "Raise the budget with a new key, or ask for fewer tokens (max_tokens).",
                    ),
                    Budget::OrgDailyCap => (
                        "The organization's daily spend cap would be exceeded",
                        format!(
                            "The organization has spent {spent} of its {budget} USD cap today (UTC), counting requests still running."
                        ),
                        "Wait for the next UTC day, or ask an owner or admin to raise daily_cost_cap_usd.",
                    ),
                    Budget::MemberDailyCap => (
                        "Your daily spend cap in this organization would be exceeded",
                        format!(
                            "You have spent {spent} of the {budget} USD each member may spend today (UTC), counting requests still running."
                        ),
                        "Wait for the next UTC day, or ask an owner or admin to raise member_daily_cost_cap_usd.",
                    ),
                };
                ApiError::new(ErrorCode::BillingBudgetExceeded, message).why(why).fix(fix)
            }
            Refusal::Store(err) => DomainError::from(err).into(),
        }
    }
}

/// The gateway's 404 for a model that does not exist or the key may not use.
pub fn model_not_found(model: &str) -> ApiError {
    ApiError::new(ErrorCode::GatewayModelNotFound, format!("The model `{model}` does not exist"))
        .param("model")
        .fix("List the models this key may use with GET /v1/models.")
}

/// `text` with its first letter in upper case.
fn upper_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn exhausted(provider: &str, last: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::GatewayUpstreamError, "No provider of this model could answer")
        .why(format!("Last failure, from {provider}: {last}"))
        .fix("Retry later; the operator can add fallback targets to the route.")
}

fn key_rate_limited(kind: &str, limit: u32, retry_after: std::time::Duration) -> ApiError {
    let mut err =
        ApiError::rate_limited(ErrorCode::RateLimitExceeded, Decision::Limited { limit, retry_after });
    err.why = Some(format!("The key's per-minute {kind} limit ({limit}) is reached."));
    err
}

/// Why a run failed, in the envelope's words: a failed model call reads as
/// the same call to `/v1/chat/completions` would have.
impl From<&RunFailure> for ApiError {
    fn from(failure: &RunFailure) -> Self {
        match failure {
            RunFailure::Blocked { rule, reason } => {
                ApiError::new(ErrorCode::RunBlocked, format!("The run was blocked by {rule}"))
                    .why(format!("{}.", upper_first(reason)))
                    .fix("Ask the operator about the route's policy, or change what the run asks for.")
            }
            RunFailure::MaxStepsExceeded { limit } => ApiError::new(
                ErrorCode::RunMaxStepsExceeded,
                format!("The run reached its max_steps ({limit})"),
            )
            .param("max_steps")
            .why("Each model answer and each tool call is a step.")
            .fix("Start a new run with a higher max_steps (at most 100)."),
            RunFailure::MaxCostExceeded { limit_micros, spent_micros } => ApiError::new(
                ErrorCode::RunMaxCostExceeded,
                "The run's next model call could go past its max_cost_usd",
            )
            .param("max_cost_usd")
            .why(format!(
                "The run has spent {} of its {} USD, and a model call is charged up to its estimate before it runs.",
                format_usd_micros(*spent_micros),
                format_usd_micros(*limit_micros)
            ))
            .fix("Start a new run with a higher max_cost_usd."),
            RunFailure::ClientToolTimeout { waited_secs } => ApiError::new(
                ErrorCode::RunClientToolTimeout,
                "No client tool output came in time",
            )
            .why(format!("The run waited {waited_secs} seconds in requires_action for the outputs of its client tool calls."))
            .fix("Answer client tool calls sooner, or ask the operator to raise runs.client_tool_timeout_secs."),
            RunFailure::KeyRevoked => ApiError::new(
                ErrorCode::RunKeyRevoked,
                "The API key that created the run was revoked or expired",
            )
            .why("A run's model calls are made for the key that created it, as it is at each step."),
            RunFailure::CreatorLeftOrg => ApiError::new(
                ErrorCode::RunCreatorLeftOrg,
                "The user who created the run is no longer a member of its organization",
            ),
            RunFailure::RateLimited { kind, limit, retry_after_secs } => {
                key_rate_limited(kind, *limit, std::time::Duration::from_secs(*retry_after_secs))
            }
            RunFailure::BudgetExceeded { what, budget_micros, spent_micros } => Refusal::BudgetExceeded {
                what: *what,
                budget_micros: *budget_micros,
                spent_micros: *spent_micros,
            }
            .into(),
            RunFailure::ModelRejected { provider, status, message } => GatewayError::Rejected {
                provider: provider.as_str().into(),
                status: *status,
                message: message.clone(),
            }
            .into(),
            RunFailure::ModelUnavailable { provider, last } => exhausted(provider, last),
            RunFailure::ModelTimeout => GatewayError::Timeout.into(),
            RunFailure::ModelUnsupported { what } => ApiError::new(ErrorCode::GatewayInvalidRequest, what.clone())
                .fix("Use a model whose provider supports this operation."),
            RunFailure::ModelUnreadable { detail } => {
                ApiError::new(ErrorCode::GatewayUpstreamError, "The model's answer could not be read")
                    .why(detail.clone())
                    .fix("Retry later; the operator can check the route's provider.")
            }
        }
    }
}

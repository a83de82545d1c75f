//! [`DomainError`]: everything an area's operation can refuse or fail with,
//! and the kinds of objects a caller can fail to find.

use crate::db::StoreError;

/// Everything a domain operation can refuse or fail with. Mapped once, in
/// `crate::http::from_domain`, to the wire envelope.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("invalid {param}: {message}")]
    Invalid { param: &'static str, message: String },
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("weak {param}: {why}")]
    WeakPassword { param: &'static str, why: &'static str },
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("invalid or expired access token")]
    InvalidToken,
    #[error("invalid API key")]
    InvalidApiKey,
    #[error("invalid or expired refresh token")]
    InvalidRefreshToken,
    #[error("refresh token reused; the session was revoked")]
    RefreshReused,
    #[error("this operation needs a session token, not an API key")]
    SessionRequired,
    #[error("this needs the password or second factor presented within the last {0} seconds")]
    ReauthenticationRequired(u64),
    #[error("a session token must name the organization to act in")]
    OrgRequired,
    #[error("an API key narrowed to a project cannot administer the organization")]
    ProjectKeyDenied,
    #[error("the API key lacks the `{0}` scope")]
    ScopeDenied(&'static str),
    #[error("your role in this organization does not allow it")]
    RoleDenied,
    #[error("two-factor authentication is already on")]
    TwoFactorAlreadyEnabled,
    #[error("two-factor authentication is off")]
    TwoFactorNotEnabled,
    #[error("start two-factor setup first")]
    TwoFactorSetupRequired,
    #[error("wrong two-factor code")]
    InvalidTwoFactorCode,
    #[error("two-factor code already used")]
    TotpReplayed,
    #[error("invalid or expired login challenge")]
    InvalidChallenge,
    #[error("this needs a verified email address")]
    EmailUnverified,
    #[error("the email address is already verified")]
    EmailAlreadyVerified,
    #[error("wrong or expired verification code")]
    InvalidVerificationCode,
    #[error("invalid or expired password-reset token")]
    InvalidResetToken,
    #[error("too many second-factor attempts for this account")]
    TooManySecondFactorAttempts(std::time::Duration),
    /// A quota counted over a window is spent; `why` names it.
    #[error("quota spent: {why}")]
    QuotaSpent { limit: u32, window_secs: u64, why: String },
    #[error("a verification mail was resent too recently")]
    ResendTooSoon(std::time::Duration),
    #[error("already a member")]
    AlreadyMember,
    #[error("invalid or expired invitation")]
    InvalidInvitation,
    #[error("the invitation is for another email address")]
    InvitationEmailMismatch,
    #[error("the organization would have no owner left")]
    LastOwner,
    #[error("no model (route) named {0}")]
    ModelNotFound(String),
    #[error("the run is {0}, not waiting for tool outputs")]
    RunNotAwaitingToolOutputs(&'static str),
    #[error("the run made no tool call {0}")]
    UnknownToolCall(String),
    #[error("the tool call {0} is already answered")]
    ToolCallAlreadyAnswered(String),
    #[error("the run already ended ({0})")]
    RunFinished(&'static str),
    #[error("the run is {0}, not paused")]
    RunNotPaused(&'static str),
    #[error("the caller is not an approver of the run")]
    NotAnApprover,
    #[error("the session has a run that is not over")]
    SessionBusy,
    #[error("the session is shared with the caller to read only")]
    SessionReadOnly,
    #[error("only the session's creator, or an owner or admin of its org, may do this")]
    SessionCreatorOnly,
    #[error("{0} is not a member of the session's organization")]
    NotOrgMember(String),
    #[error("the idempotency key was already used with another request")]
    IdempotencyKeyReused,
    #[error("the first request with this idempotency key is still in progress after {0} seconds")]
    IdempotencyInProgress(u64),
    #[error("{0} not found")]
    NotFound(Resource),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type DomainResult<T> = Result<T, DomainError>;

/// Kinds of objects a caller can fail to find (or may not know exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Organization,
    ApiKey,
    Member,
    Invitation,
    Project,
    Session,
    Run,
    /// A session of runs (`/v1/sessions`), not a sign-in session.
    RunSession,
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Organization => "organization",
            Self::ApiKey => "API key",
            Self::Member => "member",
            Self::Invitation => "invitation",
            Self::Project => "project",
            Self::Session => "session",
            Self::RunSession => "session",
            Self::Run => "run",
        })
    }
}

//! Business rules, one module per area. Domain functions take a
//! [`Principal`](principal::Principal) and decide who may do what; they know
//! nothing about HTTP, and all SQL goes through [`crate::store`].

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod email;
pub mod invitations;
pub mod key_cache;
pub mod key_usage;
pub mod notices;
pub mod orgs;
pub mod passwords;
pub mod principal;
pub mod projects;
pub mod step_up;
pub mod tokens;
pub mod two_factor;
pub mod usage;

use crate::store::StoreError;

/// Everything a domain operation can refuse or fail with. Mapped once, in
/// `crate::api::errors`, to the wire envelope.
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
    #[error("too many invitations: {0:?}")]
    TooManyInvitations(invitations::InvitationQuota),
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
        })
    }
}

/// One page of a keyset-paginated list.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The id to continue after, when more items follow.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in id order: the
    /// extra row only says that another page exists.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> &str) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if has_more { rows.last().map(|row| id(row).to_owned()) } else { None };
        Self { items: rows, next_cursor }
    }
}

/// Who is asking and from where, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

/// A new prefixed, time-sortable id such as `usr_01jd3x…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Longest name of an org or project, in characters.
pub const MAX_NAME_LEN: usize = 100;

/// A trimmed org or project name of 1 to [`MAX_NAME_LEN`] characters.
pub fn check_name(name: &str) -> DomainResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(DomainError::Invalid {
            param: "name",
            message: "must be 1 to 100 characters".to_owned(),
        });
    }
    Ok(name.to_owned())
}

/// Lists return 50 items unless asked; the API caps `limit` at 200.
pub fn page_limit(limit: Option<u32>) -> i64 {
    i64::from(limit.unwrap_or(50).clamp(1, 200))
}

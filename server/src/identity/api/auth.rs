//! `/v1/auth/*`: register, log in, refresh, log out, and who am I.

use std::net::IpAddr;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi, Union};

use crate::http::client_addr::{ClientAddr, context};
use crate::http::credential::AnyCredential;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::responses::{Created201, NoContent204};
use crate::http::wire::EmailAddress;
use crate::http::{ApiTags, Ok200};
use crate::identity::accounts;
use crate::identity::accounts::{LoginOutcome, Registration, SignedIn};
use crate::identity::api::wire::{Org, User};
use crate::identity::step_up;
use crate::kernel::error::DomainError;
use crate::limits::Decision;
use crate::operation_errors;
use crate::state::AppState;

#[derive(Default)]
pub struct AuthApi;

#[derive(Debug, Object)]
pub struct RegisterRequest {
    pub email: EmailAddress,
    /// 8 to 128 characters, not among the most common passwords.
    pub password: String,
    pub display_name: Option<String>,
}

#[derive(Debug, Object)]
pub struct LoginRequest {
    pub email: EmailAddress,
    pub password: String,
}

#[derive(Debug, Object)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Object)]
pub struct PasswordChangeRequest {
    pub current_password: String,
    /// 8 to 128 characters, not among the most common passwords.
    pub new_password: String,
}

/// Exactly one of `password`, `code` and `recovery_code`.
#[derive(Debug, Object)]
pub struct ReauthenticateRequest {
    pub password: Option<String>,
    /// A current code from the authenticator (two-factor accounts).
    pub code: Option<String>,
    /// An unused recovery code (two-factor accounts).
    pub recovery_code: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum TokenType {
    Bearer,
}

/// A signed-in user and their tokens.
#[derive(Debug, Object)]
pub struct AuthTokens {
    pub user: User,
    /// Send as `Authorization: Bearer …`; short-lived.
    pub access_token: String,
    /// Exchange at `POST /v1/auth/refresh` for a new pair; single use.
    pub refresh_token: String,
    pub token_type: TokenType,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl From<SignedIn> for AuthTokens {
    fn from(signed: SignedIn) -> Self {
        Self {
            user: signed.user.into(),
            access_token: signed.access_token,
            refresh_token: signed.refresh_token,
            token_type: TokenType::Bearer,
            expires_in: signed.expires_in,
        }
    }
}

/// The account has two-factor authentication: complete the login at
/// `POST /v1/auth/2fa/login` with this challenge and a code.
#[derive(Debug, Object)]
pub struct TwoFactorChallenge {
    /// Always `true`.
    pub two_factor_required: bool,
    /// Single use; send it with the code.
    pub challenge_token: String,
    /// Seconds until the challenge expires.
    pub expires_in: u64,
}

/// Tokens, or a challenge when the account has two-factor authentication.
#[derive(Debug, Union)]
#[oai(one_of)]
pub enum LoginResult {
    AuthTokens(AuthTokens),
    TwoFactorChallenge(TwoFactorChallenge),
}

impl From<LoginOutcome> for LoginResult {
    fn from(outcome: LoginOutcome) -> Self {
        match outcome {
            LoginOutcome::SignedIn(signed) => Self::AuthTokens(signed.into()),
            LoginOutcome::TwoFactorRequired(challenge) => Self::TwoFactorChallenge(TwoFactorChallenge {
                two_factor_required: true,
                challenge_token: challenge.token,
                expires_in: challenge.expires_in,
            }),
        }
    }
}

/// The caller and the organizations they belong to.
#[derive(Debug, Object)]
pub struct Me {
    pub user: User,
    pub orgs: Vec<Org>,
}

operation_errors!(RegisterError: 400, 409, 422, 429);
operation_errors!(LoginError: 400, 401, 429);
operation_errors!(RefreshError: 400, 401, 429);
operation_errors!(LogoutError: 401, 403, 429);
operation_errors!(MeError: 401, 429);
operation_errors!(PasswordChangeError: 400, 401, 403, 422, 429);
operation_errors!(ReauthenticateError: 400, 401, 403, 409, 422, 429);

/// Refuses the request with 429 when `decision` says so.
pub fn enforce(decision: Decision) -> Result<(), ApiError> {
    match decision {
        Decision::Allowed { .. } => Ok(()),
        limited @ Decision::Limited { .. } => {
            Err(ApiError::rate_limited(ErrorCode::RateLimitExceeded, limited))
        }
    }
}

/// Refuses with 429 while `account` is locked out from `ip` after too many
/// wrong passwords.
async fn refuse_if_locked_out(state: &AppState, account: &str, ip: IpAddr) -> Result<(), ApiError> {
    match state.limits.login_locked(account, ip).await {
        Some(retry_after) => {
            let decision = Decision::Limited { limit: state.limits.config().lockout.max, retry_after };
            Err(ApiError::rate_limited(ErrorCode::AuthTooManyFailedLogins, decision))
        }
        None => Ok(()),
    }
}

/// Counts a password check toward the lockout: a wrong password adds a
/// failure, a right one clears them, anything else leaves them.
async fn count_password_attempt<T>(
    state: &AppState,
    account: &str,
    ip: IpAddr,
    outcome: &Result<T, DomainError>,
) {
    match outcome {
        Err(DomainError::InvalidCredentials) => state.limits.login_failed(account, ip).await,
        Ok(_) => state.limits.login_succeeded(account, ip).await,
        Err(_) => {}
    }
}

#[OpenApi(tag = "ApiTags::Auth")]
impl AuthApi {
    /// Creates an account and signs it in.
    #[oai(path = "/v1/auth/register", method = "post", operation_id = "auth_register")]
    async fn auth_register(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        body: Json<RegisterRequest>,
    ) -> Result<Created201<AuthTokens>, RegisterError> {
        enforce(state.limits.register(client.ip()).await)?;
        let issuer = state.token_issuer().await?;
        let Json(body) = body;
        let input =
            Registration { email: body.email.0, password: body.password, display_name: body.display_name };
        let signed =
            accounts::register(&state.db, issuer, &state.mail, input, &context(&state, client)).await?;
        Ok(Created201::Created(Json(signed.into())))
    }

    /// Exchanges email and password for tokens, or for a two-factor challenge.
    #[oai(path = "/v1/auth/login", method = "post", operation_id = "auth_login")]
    async fn auth_login(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        body: Json<LoginRequest>,
    ) -> Result<Ok200<LoginResult>, LoginError> {
        let ip = client.ip();
        enforce(state.limits.login(ip).await)?;
        let Json(LoginRequest { email: EmailAddress(email), password }) = body;
        // Lockouts count per normalised address, so case variants share a count.
        let account = accounts::normalize_email(&email).unwrap_or_else(|_| email.clone());
        refuse_if_locked_out(&state, &account, ip).await?;
        let issuer = state.token_issuer().await?;
        let outcome =
            accounts::login(&state.db, issuer, &state.mail, &email, password, &context(&state, client)).await;
        count_password_attempt(&state, &account, ip, &outcome).await;
        Ok(Ok200::Ok(Json(outcome?.into())))
    }

    /// Spends a refresh token for a new token pair. Presenting a spent token
    /// again revokes the whole session.
    #[oai(path = "/v1/auth/refresh", method = "post", operation_id = "auth_refresh")]
    async fn auth_refresh(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        body: Json<RefreshRequest>,
    ) -> Result<Ok200<AuthTokens>, RefreshError> {
        let issuer = state.token_issuer().await?;
        let signed =
            accounts::refresh(&state.db, issuer, &body.0.refresh_token, &context(&state, client)).await?;
        Ok(Ok200::Ok(Json(signed.into())))
    }

    /// Ends the current session: its access and refresh tokens stop working.
    #[oai(path = "/v1/auth/logout", method = "post", operation_id = "auth_logout")]
    async fn auth_logout(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
    ) -> Result<NoContent204, LogoutError> {
        let principal = state.principal(&auth).await?;
        accounts::logout(&state.db, &principal, &context(&state, client)).await?;
        Ok(NoContent204::NoContent)
    }

    /// Changes the caller's password. Every session ends and the answer starts
    /// a new one. Wrong current passwords count toward the login lockout of
    /// the account from this address.
    #[oai(path = "/v1/auth/password", method = "post", operation_id = "auth_password_change")]
    async fn auth_password_change(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        body: Json<PasswordChangeRequest>,
    ) -> Result<Ok200<AuthTokens>, PasswordChangeError> {
        let principal = state.principal(&auth).await?;
        principal.require_session()?;
        let ip = client.ip();
        let account = accounts::lockout_account(&state.db, &principal).await?;
        let user = account.as_str();
        refuse_if_locked_out(&state, user, ip).await?;
        let issuer = state.token_issuer().await?;
        let Json(body) = body;
        let outcome = accounts::password_change(
            &state.db,
            issuer,
            &principal,
            body.current_password,
            body.new_password,
            &context(&state, client),
        )
        .await;
        count_password_attempt(&state, user, ip, &outcome).await;
        Ok(Ok200::Ok(Json(outcome?.into())))
    }

    /// Proves who the caller is again, with the password or a second
    /// factor: for the next 10 minutes (`reauthentication_window_secs`) this
    /// session may turn on two-factor login and mint API keys. Wrong
    /// passwords count toward the lockout, codes toward the account's
    /// second-factor attempts.
    #[oai(path = "/v1/auth/reauthenticate", method = "post", operation_id = "auth_reauthenticate")]
    async fn auth_reauthenticate(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        body: Json<ReauthenticateRequest>,
    ) -> Result<NoContent204, ReauthenticateError> {
        let principal = state.principal(&auth).await?;
        principal.require_session()?;
        let Json(body) = body;
        let proof = step_up::Proof::from_fields(body.password, body.code, body.recovery_code)?;
        let ip = client.ip();
        let account = accounts::lockout_account(&state.db, &principal).await?;
        let user = account.as_str();
        refuse_if_locked_out(&state, user, ip).await?;
        let outcome = step_up::reauthenticate(&state.db, &principal, proof, &context(&state, client)).await;
        count_password_attempt(&state, user, ip, &outcome).await;
        outcome?;
        Ok(NoContent204::NoContent)
    }

    /// The caller and their organizations (an API key sees only its own org).
    #[oai(path = "/v1/auth/me", method = "get", operation_id = "auth_me")]
    async fn auth_me(&self, state: Data<&AppState>, auth: AnyCredential) -> Result<Ok200<Me>, MeError> {
        let principal = state.principal(&auth).await?;
        let (user, orgs) = accounts::me(&state.db, &principal).await?;
        Ok(Ok200::Ok(Json(Me { user: user.into(), orgs: orgs.into_iter().map(Org::from).collect() })))
    }
}

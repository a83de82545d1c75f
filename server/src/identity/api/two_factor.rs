//! `/v1/auth/2fa/*`: set up, enable and disable TOTP, and complete a login
//! that needs the second factor.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::http::client_addr::{ClientAddr, context};
use crate::http::credential::AnyCredential;
use crate::http::responses::NoContent204;
use crate::http::{ApiTags, Ok200};
use crate::identity::api::auth::{AuthTokens, enforce};
use crate::identity::two_factor;
use crate::identity::two_factor::Factor;
use crate::operation_errors;
use crate::state::AppState;

#[derive(Default)]
pub struct TwoFactorApi;

/// A new TOTP secret, pending until a code from it is confirmed.
#[derive(Debug, Object)]
pub struct TwoFactorSetup {
    /// Base32; for authenticators that take the secret by hand.
    pub secret: String,
    /// `otpauth://totp/…`, to show as a QR code.
    pub otpauth_url: String,
}

#[derive(Debug, Object)]
pub struct EnableTwoFactorRequest {
    /// The current 6-digit code from the authenticator.
    pub code: String,
}

/// Single-use codes that stand in for the authenticator. Shown once.
#[derive(Debug, Object)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// Exactly one of `code` and `recovery_code`.
#[derive(Debug, Object)]
pub struct DisableTwoFactorRequest {
    pub password: String,
    pub code: Option<String>,
    pub recovery_code: Option<String>,
}

/// Exactly one of `code` and `recovery_code`.
#[derive(Debug, Object)]
pub struct TwoFactorLoginRequest {
    /// From `POST /v1/auth/login`.
    pub challenge_token: String,
    pub code: Option<String>,
    pub recovery_code: Option<String>,
}

operation_errors!(TwoFactorSetupError: 401, 403, 409, 429);
operation_errors!(TwoFactorEnableError: 400, 401, 403, 409, 429);
operation_errors!(TwoFactorDisableError: 400, 401, 403, 409, 422, 429);
operation_errors!(TwoFactorLoginError: 400, 401, 422, 429);

#[OpenApi(tag = "ApiTags::Auth")]
impl TwoFactorApi {
    /// Starts two-factor setup: a new secret for an authenticator app.
    #[oai(path = "/v1/auth/2fa/setup", method = "post", operation_id = "two_factor_setup")]
    async fn two_factor_setup(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
    ) -> Result<Ok200<TwoFactorSetup>, TwoFactorSetupError> {
        let principal = state.principal(&auth).await?;
        let window = state.step_up_window_secs();
        let (secret, otpauth_url) =
            two_factor::setup(&state.db, &principal, window, &context(&state, client)).await?;
        Ok(Ok200::Ok(Json(TwoFactorSetup { secret, otpauth_url })))
    }

    /// Confirms setup with a current code. Returns ten recovery codes, once,
    /// and ends every session of the user: log in again with the second factor.
    #[oai(path = "/v1/auth/2fa/enable", method = "post", operation_id = "two_factor_enable")]
    async fn two_factor_enable(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        body: Json<EnableTwoFactorRequest>,
    ) -> Result<Ok200<RecoveryCodes>, TwoFactorEnableError> {
        let principal = state.principal(&auth).await?;
        let window = state.step_up_window_secs();
        let recovery_codes = two_factor::enable(
            &state.db,
            &state.mail,
            &principal,
            &body.0.code,
            window,
            &context(&state, client),
        )
        .await?;
        Ok(Ok200::Ok(Json(RecoveryCodes { recovery_codes })))
    }

    /// Turns two-factor off with the password and a code or recovery code.
    /// Ends every session of the user.
    #[oai(path = "/v1/auth/2fa/disable", method = "post", operation_id = "two_factor_disable")]
    async fn two_factor_disable(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        body: Json<DisableTwoFactorRequest>,
    ) -> Result<NoContent204, TwoFactorDisableError> {
        let principal = state.principal(&auth).await?;
        let Json(body) = body;
        let factor = Factor::from_fields(body.code, body.recovery_code)?;
        two_factor::disable(
            &state.db,
            &state.mail,
            &principal,
            body.password,
            factor,
            &context(&state, client),
        )
        .await?;
        Ok(NoContent204::NoContent)
    }

    /// Completes a login that returned a two-factor challenge.
    #[oai(path = "/v1/auth/2fa/login", method = "post", operation_id = "two_factor_login")]
    async fn two_factor_login(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        body: Json<TwoFactorLoginRequest>,
    ) -> Result<Ok200<AuthTokens>, TwoFactorLoginError> {
        enforce(state.limits.login(client.ip()).await)?;
        let issuer = state.token_issuer().await?;
        let Json(body) = body;
        let factor = Factor::from_fields(body.code, body.recovery_code)?;
        let signed = two_factor::login(
            &state.db,
            issuer,
            &state.mail,
            &body.challenge_token,
            factor,
            &context(&state, client),
        )
        .await?;
        Ok(Ok200::Ok(Json(signed.into())))
    }
}

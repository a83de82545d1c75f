//! `/v1/auth/verify-email`, `/v1/auth/resend-verification` and
//! `/v1/auth/password-reset[/confirm]`: the flows that go through the mailbox.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::http::ApiTags;
use crate::http::client_addr::{ClientAddr, context};
use crate::http::credential::AnyCredential;
use crate::http::responses::{Accepted202, NoContent204};
use crate::http::wire::EmailAddress;
use crate::identity::api::auth::enforce;
use crate::identity::email;
use crate::operation_errors;
use crate::state::AppState;

#[derive(Default)]
pub struct EmailApi;

#[derive(Debug, Object)]
pub struct VerifyEmailRequest {
    /// The 6-digit code from the verification mail.
    pub code: String,
}

#[derive(Debug, Object)]
pub struct PasswordResetRequest {
    pub email: EmailAddress,
}

#[derive(Debug, Object)]
pub struct PasswordResetConfirmRequest {
    /// The token from the reset mail.
    pub token: String,
    /// 8 to 128 characters, not among the most common passwords.
    pub new_password: String,
}

/// A mail is on its way (or, for a password reset, is if the account exists).
#[derive(Debug, Object)]
pub struct MailAccepted {
    pub message: String,
}

/// The one answer to every reset request, whether or not the account exists.
const RESET_ACCEPTED: &str = "If an account exists for this address, a password-reset link is on its way. It works once, within 30 minutes.";
const CODE_SENT: &str = "A new verification code is on its way. It works for 10 minutes.";

operation_errors!(VerifyEmailError: 400, 401, 403, 409, 422, 429);
operation_errors!(ResendVerificationError: 401, 403, 409, 429);
operation_errors!(PasswordResetError: 400, 429);
operation_errors!(PasswordResetConfirmError: 400, 401, 422, 429);

#[OpenApi(tag = "ApiTags::Auth")]
impl EmailApi {
    /// Confirms the caller's email address with the code mailed to it.
    #[oai(path = "/v1/auth/verify-email", method = "post", operation_id = "auth_verify_email")]
    async fn auth_verify_email(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        body: Json<VerifyEmailRequest>,
    ) -> Result<NoContent204, VerifyEmailError> {
        let principal = state.principal(&auth).await?;
        email::verify_email(&state.db, &principal, &body.0.code, &context(&state, client)).await?;
        Ok(NoContent204::NoContent)
    }

    /// Mails the caller a new verification code (at most once a minute).
    #[oai(path = "/v1/auth/resend-verification", method = "post", operation_id = "auth_resend_verification")]
    async fn auth_resend_verification(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
    ) -> Result<Accepted202<MailAccepted>, ResendVerificationError> {
        let principal = state.principal(&auth).await?;
        email::resend_verification(&state.db, &state.mail, &principal, &context(&state, client)).await?;
        Ok(Accepted202::Accepted(Json(MailAccepted { message: CODE_SENT.to_owned() })))
    }

    /// Mails a password-reset link if the address has an account. The answer
    /// is the same either way.
    #[oai(path = "/v1/auth/password-reset", method = "post", operation_id = "password_reset_request")]
    async fn password_reset_request(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        body: Json<PasswordResetRequest>,
    ) -> Result<Accepted202<MailAccepted>, PasswordResetError> {
        enforce(state.limits.password_reset(client.ip()).await)?;
        email::request_password_reset(&state.db, &state.mail, &body.0.email.0, &context(&state, client))
            .await?;
        Ok(Accepted202::Accepted(Json(MailAccepted { message: RESET_ACCEPTED.to_owned() })))
    }

    /// Sets a new password with the token from the reset mail. Every session
    /// of the account ends; two-factor login stays as it was.
    #[oai(path = "/v1/auth/password-reset/confirm", method = "post", operation_id = "password_reset_confirm")]
    async fn password_reset_confirm(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        body: Json<PasswordResetConfirmRequest>,
    ) -> Result<NoContent204, PasswordResetConfirmError> {
        let Json(body) = body;
        email::confirm_password_reset(&state.db, &body.token, body.new_password, &context(&state, client))
            .await?;
        Ok(NoContent204::NoContent)
    }
}

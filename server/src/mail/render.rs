//! The text of each message the server sends. Plain text only: the code or
//! token is what matters, and plain text renders everywhere.

use crate::mail::Message;

/// The mail with a verification code for `to`.
pub fn verification(to: &str, code: &str, valid_minutes: i64) -> Message {
    Message {
        to: to.to_owned(),
        kind: "verification",
        // The subject stays in clear in the outbox and in notifications: no code in it.
        subject: "Your Switchyard verification code".to_owned(),
        body: format!(
            "Your verification code is {code}\n\n\
             Enter it to confirm this address (POST /v1/auth/verify-email). It is valid for \
             {valid_minutes} minutes.\n\n\
             If you did not create a Switchyard account, ignore this message.\n"
        ),
    }
}

/// The mail with a password-reset token and link for `to`.
pub fn password_reset(to: &str, token: &str, link: &str, valid_minutes: i64) -> Message {
    Message {
        to: to.to_owned(),
        kind: "password_reset",
        subject: "Reset your Switchyard password".to_owned(),
        body: format!(
            "Someone asked to reset the password of this Switchyard account.\n\n\
             To choose a new password, open\n\n    {link}\n\n\
             or send this token to POST /v1/auth/password-reset/confirm:\n\n    {token}\n\n\
             It works once, within {valid_minutes} minutes. Every session of the account ends \
             when the password changes; two-factor login stays as it is.\n\n\
             If you did not ask for this, ignore this message: the password stays as it is.\n"
        ),
    }
}

/// The mail inviting `to` to join the org `org_name` with `role`.
pub fn invitation(to: &str, org_name: &str, role: &str, token: &str, link: &str, valid_days: i64) -> Message {
    Message {
        to: to.to_owned(),
        kind: "invitation",
        // A name is free text: keep line breaks out of the header.
        subject: format!("You are invited to {} on Switchyard", org_name.replace(char::is_control, " ")),
        body: format!(
            "You are invited to join the organization \"{}\" (a name its members chose) on \
             Switchyard as {role}.\n\n\
             Create an account with this address (or sign in to it), then open\n\n    {link}\n\n\
             or send this token to POST /v1/orgs/invitations/accept:\n\n    {token}\n\n\
             It works once, within {valid_days} days.\n\n\
             If you do not expect this invitation, ignore this message.\n",
            org_name.replace(char::is_control, " ").replace('"', "'")
        ),
    }
}

/// The mail asking `to` to decide on a paused run: `what` it waits for.
pub fn run_approval(to: &str, run_id: &str, route: &str, what: &str) -> Message {
    Message {
        to: to.to_owned(),
        kind: "run_approval",
        subject: format!("A Switchyard run waits for your approval ({run_id})"),
        body: format!(
            "The run {run_id} on the route \"{route}\" is paused until an approver decides:\n\n    {what}\n\n\
             Read it with GET /v1/runs/{run_id}, then approve or reject it with\n\n    \
             POST /v1/runs/{run_id}/resume {{\"decision\": \"approved\"}}\n\n\
             or {{\"decision\": \"rejected\", \"reason\": \"…\"}}. The first approver to answer decides.\n"
        ),
    }
}

/// A security notice for `to`: `what` happened to the account, from `ip`.
pub fn security_notice(to: &str, what: &str, ip: Option<&str>) -> Message {
    let from = ip.map(|ip| format!(" from {ip}")).unwrap_or_default();
    Message {
        to: to.to_owned(),
        kind: "security_notice",
        subject: format!("Switchyard security notice: {what}"),
        body: format!(
            "{what} on your Switchyard account{from}.\n\n\
             If this was you, there is nothing to do.\n\n\
             If it was not, change your password now (POST /v1/auth/password), then review \
             your sessions (GET /v1/auth/sessions), API keys (GET /v1/api-keys) and \
             two-factor settings.\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_code_token_and_link() {
        let mail = verification("ada@example.com", "012345", 10);
        assert!(mail.body.contains("012345") && !mail.subject.contains("012345"));
        let mail =
            password_reset("ada@example.com", "syp_abc", "https://x.test/reset-password?token=syp_abc", 30);
        assert!(mail.body.contains("syp_abc\n"));
        assert!(mail.body.contains("https://x.test/reset-password?token=syp_abc"));
        let mail =
            invitation("grace@example.com", "Acme", "member", "syi_abc", "https://x.test/i?token=syi_abc", 7);
        assert!(mail.body.contains("syi_abc\n") && mail.body.contains("https://x.test/i?token=syi_abc"));
    }
}

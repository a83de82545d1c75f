//! Sessions: a conversation that runs continue. A session's history is the
//! message and final answer of each of its completed runs, in order; a run
//! started with `session_id` + `message` begins from that history (cut to
//! fit, see [`history_for_run`]) and the new message. A session runs one run
//! at a time. Who may see and continue a session: its creator, and the
//! owners and admins of its org; a key narrowed to a project, that
//! project's sessions.

use crate::gateway::Caller;
use crate::kernel::error::{DomainError, DomainResult, Resource};
use crate::kernel::ids::new_id;
use crate::kernel::page::Page;
use crate::kernel::principal::{Principal, Scope};
use crate::runs::Runs;
use crate::runs::model::InputMessage;
use crate::runs::service::{Listing, Owned};

/// Longest session title.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most history messages a run of a session starts from (besides its new one).
pub const MAX_HISTORY_MESSAGES: usize = 98;
/// Most characters of history a run of a session starts from.
pub const MAX_HISTORY_CHARS: usize = 400_000;

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub org_id: String,
    pub project_id: Option<String>,
    pub user_id: String,
    pub key_id: Option<String>,
    pub title: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One message of a session's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMessage {
    pub role: String,
    pub content: String,
    /// The run it came from.
    pub run_id: String,
    pub created_at: i64,
}

/// What a session holds, besides itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionTotals {
    pub run_count: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_micros: i64,
    /// The run that is not over yet, if one is going.
    pub active_run_id: Option<String>,
}

/// A session with its history and totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDetail {
    pub session: Session,
    pub messages: Vec<SessionMessage>,
    pub totals: SessionTotals,
}

impl Runs {
    /// Starts an empty session for the caller in its org.
    pub async fn session_create(
        &self,
        principal: &Principal,
        org: Option<&str>,
        title: Option<String>,
    ) -> DomainResult<SessionDetail> {
        principal.require_scope(Scope::Runs)?;
        if title.as_ref().is_some_and(|title| title.chars().count() > MAX_TITLE_CHARS) {
            return Err(DomainError::Invalid {
                param: "title",
                message: format!("is longer than {MAX_TITLE_CHARS} characters"),
            });
        }
        let caller = Caller::resolve(self.db(), principal, org).await?;
        let now = self.clock().now();
        let session = Session {
            id: new_id("ses"),
            org_id: caller.org_id,
            project_id: caller.project_id,
            user_id: caller.user_id,
            key_id: caller.key_id,
            title: title.filter(|title| !title.trim().is_empty()),
            created_at: now,
            updated_at: now,
        };
        self.db().session_insert(&session).await?;
        Ok(SessionDetail { session, messages: Vec::new(), totals: SessionTotals::default() })
    }

    /// The session, if the caller may see it.
    pub async fn session(&self, principal: &Principal, id: &str) -> DomainResult<Session> {
        principal.require_scope(Scope::Runs)?;
        let session =
            self.db().session_by_id(id).await?.ok_or(DomainError::NotFound(Resource::RunSession))?;
        if !self.may_see_session(principal, &session).await? {
            return Err(DomainError::NotFound(Resource::RunSession));
        }
        Ok(session)
    }

    /// The session with its history and totals.
    pub async fn session_get(&self, principal: &Principal, id: &str) -> DomainResult<SessionDetail> {
        let session = self.session(principal, id).await?;
        let messages = self.db().session_history(id).await?;
        let totals = self.db().session_totals(id).await?;
        Ok(SessionDetail { session, messages, totals })
    }

    /// The sessions of the caller's org it may see, oldest first.
    pub async fn session_list(
        &self,
        principal: &Principal,
        org: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> DomainResult<Page<Session>> {
        let Listing { org_id, only_user, project } = self.listing(principal, org).await?;
        let rows = self.db().sessions_in_org(org_id, only_user, project, after, limit + 1).await?;
        Ok(Page::from_rows(rows, limit, |session| &session.id))
    }

    /// Deletes a session and its history; its runs stay, without it. A
    /// session with a run going cannot be deleted (`run.session_busy`).
    pub async fn session_delete(&self, principal: &Principal, id: &str) -> DomainResult<()> {
        let session = self.session(principal, id).await?;
        if !self.db().session_delete(&session.id).await? {
            return Err(DomainError::SessionBusy);
        }
        Ok(())
    }

    /// The history a run continuing session `id` starts from, cut to fit.
    pub(super) async fn session_history_for_run(
        &self,
        principal: &Principal,
        id: &str,
        org_id: &str,
    ) -> DomainResult<Vec<InputMessage>> {
        let session = self.session(principal, id).await?;
        if session.org_id != org_id {
            return Err(DomainError::NotFound(Resource::RunSession));
        }
        Ok(history_for_run(self.db().session_history(id).await?))
    }

    async fn may_see_session(&self, principal: &Principal, session: &Session) -> DomainResult<bool> {
        let owned = Owned {
            org_id: &session.org_id,
            project_id: session.project_id.as_deref(),
            user_id: &session.user_id,
        };
        self.may_see_owned(principal, owned, false).await
    }
}

/// The rule that keeps a long session within what one run may start from:
/// the newest messages of the history, whole, as many as fit in
/// [`MAX_HISTORY_MESSAGES`] messages and [`MAX_HISTORY_CHARS`] characters,
/// starting with a user message (so the model never reads an answer
/// without its question). The session keeps every message; only the run's
/// starting point is cut.
pub fn history_for_run(history: Vec<SessionMessage>) -> Vec<InputMessage> {
    let mut kept = 0;
    let mut chars = 0;
    for message in history.iter().rev() {
        let size = message.content.chars().count();
        if kept == MAX_HISTORY_MESSAGES || chars + size > MAX_HISTORY_CHARS {
            break;
        }
        kept += 1;
        chars += size;
    }
    let mut start = history.len() - kept;
    while history.get(start).is_some_and(|message| message.role != "user") {
        start += 1;
    }
    history
        .into_iter()
        .skip(start)
        .map(|message| InputMessage { role: message.role, content: message.content })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(role: &str, content: &str) -> SessionMessage {
        SessionMessage {
            role: role.to_owned(),
            content: content.to_owned(),
            run_id: "run_1".to_owned(),
            created_at: 0,
        }
    }

    #[test]
    fn a_long_history_keeps_its_newest_whole_turns() {
        let history: Vec<SessionMessage> = (0..60)
            .flat_map(|n| [said("user", &format!("q{n}")), said("assistant", &format!("a{n}"))])
            .collect();
        let kept = history_for_run(history);
        assert_eq!(kept.len(), MAX_HISTORY_MESSAGES);
        assert_eq!((kept[0].role.as_str(), kept[0].content.as_str()), ("user", "q11"));
        assert_eq!(kept.last().map(|m| m.content.as_str()), Some("a59"));
        // Characters count too: one huge old answer is left out with its question.
        let history = vec![
            said("user", "old"),
            said("assistant", &"x".repeat(MAX_HISTORY_CHARS)),
            said("user", "new"),
            said("assistant", "fine"),
        ];
        let kept: Vec<String> = history_for_run(history).into_iter().map(|m| m.content).collect();
        assert_eq!(kept, ["new", "fine"]);
        assert!(history_for_run(Vec::new()).is_empty());
    }
}

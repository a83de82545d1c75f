//! Sessions: a conversation that runs continue. A session's history is the
//! message and final answer of each of its completed runs, in order; a run
//! started with `session_id` + `message` begins from that history (cut to
//! fit, see [`history_for_run`]) and the new message. A session runs one run
//! at a time.
//!
//! Who may do what with a session is its [`Standing`]: its creator and the
//! owners and admins of its org manage it (read, continue, delete, share);
//! the members it is shared with ([`Access`]) read it, and continue it when
//! shared with permission `continue`; anyone else, or a key narrowed to
//! another project, does not see it (404).

use crate::gateway::Caller;
use crate::kernel::context::RequestContext;
use crate::kernel::error::{DomainError, DomainResult, Resource};
use crate::kernel::ids::new_id;
use crate::kernel::page::Page;
use crate::kernel::principal::{Principal, Scope};
use crate::runs::Runs;
use crate::runs::model::InputMessage;
use crate::runs::service::{Listing, Owned, Relation, invalid};

/// Longest session title.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most history messages a run of a session starts from (besides its new one).
pub const MAX_HISTORY_MESSAGES: usize = 98;
/// Most characters of history a run of a session starts from.
pub const MAX_HISTORY_CHARS: usize = 400_000;
/// Most members a session is shared with by name.
pub const MAX_SHARED_MEMBERS: usize = 100;

/// Whom besides those who manage it a session is shared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visibility {
    /// Nobody.
    #[default]
    Private,
    /// Every member of its org.
    Org,
    /// The members [`Access::members`] names.
    Members,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Org => "org",
            Self::Members => "members",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Private, Self::Org, Self::Members].into_iter().find(|v| v.as_str() == text)
    }
}

/// What those a session is shared with may do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Permission {
    /// Read it: its history, totals and runs.
    #[default]
    Read,
    /// Also start runs in it, and act on its runs.
    Continue,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Continue => "continue",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Read, Self::Continue].into_iter().find(|p| p.as_str() == text)
    }
}

/// Whom a session is shared with, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Access {
    pub visibility: Visibility,
    pub permission: Permission,
    /// With [`Visibility::Members`], their user ids, in order; else empty.
    pub members: Vec<String>,
}

impl Access {
    /// Whether it shares the session with `user_id`, a member of its org.
    pub fn shares_with(&self, user_id: &str) -> bool {
        match self.visibility {
            Visibility::Private => false,
            Visibility::Org => true,
            Visibility::Members => self.members.iter().any(|member| member == user_id),
        }
    }
}

/// A change of a session's access; what it leaves out stays as it is.
#[derive(Debug, Clone, Default)]
pub struct AccessChange {
    pub visibility: Option<Visibility>,
    pub permission: Option<Permission>,
    /// Whom to share it with (user ids or emails), in place of those it names.
    pub members: Option<Vec<String>>,
}

/// What a caller may do with a session (or a run of one), least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Standing {
    /// Nothing: it does not exist for them.
    Unseen,
    /// Read it.
    Read,
    /// Also start runs in it and act on its runs.
    Continue,
    /// Also delete it and change its access: its creator, an owner or admin.
    Manage,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub org_id: String,
    pub project_id: Option<String>,
    pub user_id: String,
    pub key_id: Option<String>,
    pub title: Option<String>,
    pub access: Access,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Session {
    fn owned(&self) -> Owned<'_> {
        Owned { org_id: &self.org_id, project_id: self.project_id.as_deref(), user_id: &self.user_id }
    }
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
            access: Access::default(),
            created_at: now,
            updated_at: now,
        };
        self.db().session_insert(&session).await?;
        Ok(SessionDetail { session, messages: Vec::new(), totals: SessionTotals::default() })
    }

    /// The session, if the caller stands at least `needed` towards it: 404
    /// when they do not see it, 403 when they see it but may not do this.
    pub(super) async fn session_for(
        &self,
        principal: &Principal,
        id: &str,
        needed: Standing,
    ) -> DomainResult<Session> {
        principal.require_scope(Scope::Runs)?;
        let session =
            self.db().session_by_id(id).await?.ok_or(DomainError::NotFound(Resource::RunSession))?;
        match self.session_standing(principal, &session).await? {
            Standing::Unseen => Err(DomainError::NotFound(Resource::RunSession)),
            standing if standing >= needed => Ok(session),
            _ if needed == Standing::Continue => Err(DomainError::SessionReadOnly),
            _ => Err(DomainError::SessionCreatorOnly),
        }
    }

    /// The session with its history and totals.
    pub async fn session_get(&self, principal: &Principal, id: &str) -> DomainResult<SessionDetail> {
        let session = self.session_for(principal, id, Standing::Read).await?;
        let messages = self.db().session_history(id).await?;
        let totals = self.db().session_totals(id).await?;
        Ok(SessionDetail { session, messages, totals })
    }

    /// The sessions of the caller's org it may see, oldest first: all of
    /// them for owners and admins, else its own and those shared with it.
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
        let session = self.session_for(principal, id, Standing::Manage).await?;
        if !self.db().session_delete(&session.id).await? {
            return Err(DomainError::SessionBusy);
        }
        Ok(())
    }

    /// Changes whom the session is shared with and what they may do, and
    /// records the change in its org's audit trail.
    pub async fn session_access_update(
        &self,
        principal: &Principal,
        id: &str,
        change: AccessChange,
        ctx: &RequestContext,
    ) -> DomainResult<Access> {
        let session = self.session_for(principal, id, Standing::Manage).await?;
        let access = self.access_after(&session, change).await?;
        if access == session.access {
            return Ok(access);
        }
        if !self.db().session_access_set(&session.id, &access).await? {
            return Err(DomainError::NotFound(Resource::RunSession));
        }
        self.audit_access_changed(principal, &session, &access, ctx).await?;
        Ok(access)
    }

    /// The access `change` leaves the session with. Members are named only
    /// with visibility `members`, and must be members of its org.
    async fn access_after(&self, session: &Session, change: AccessChange) -> DomainResult<Access> {
        let AccessChange { visibility, permission, members } = change;
        if visibility.is_none() && permission.is_none() && members.is_none() {
            return Err(invalid("visibility", "send at least one of visibility, permission and members"));
        }
        let visibility = visibility.unwrap_or(session.access.visibility);
        let members = match (visibility, members) {
            (Visibility::Members, Some(named)) => self.shared_members(&session.org_id, &named).await?,
            (Visibility::Members, None) if session.access.visibility == Visibility::Members => {
                session.access.members.clone()
            }
            (Visibility::Members, None) => {
                return Err(invalid("members", "visibility members needs the members to share with"));
            }
            (_, Some(named)) if !named.is_empty() => {
                return Err(invalid("members", "names whom to share with only with visibility members"));
            }
            (_, _) => Vec::new(),
        };
        let permission = permission.unwrap_or(session.access.permission);
        Ok(Access { visibility, permission, members })
    }

    /// The user ids of the members `named` (user ids or emails), in order.
    async fn shared_members(&self, org_id: &str, named: &[String]) -> DomainResult<Vec<String>> {
        if named.is_empty() || named.len() > MAX_SHARED_MEMBERS {
            return Err(invalid("members", format!("name 1 to {MAX_SHARED_MEMBERS} members")));
        }
        let mut members = Vec::with_capacity(named.len());
        for who in named {
            let user_id =
                self.member_id(org_id, who).await?.ok_or_else(|| DomainError::NotOrgMember(who.clone()))?;
            members.push(user_id);
        }
        members.sort();
        members.dedup();
        Ok(members)
    }

    /// The history a run continuing session `id` starts from, cut to fit.
    pub(super) async fn session_history_for_run(
        &self,
        principal: &Principal,
        id: &str,
        org_id: &str,
    ) -> DomainResult<Vec<InputMessage>> {
        let session = self.session_for(principal, id, Standing::Continue).await?;
        if session.org_id != org_id {
            return Err(DomainError::NotFound(Resource::RunSession));
        }
        Ok(history_for_run(self.db().session_history(id).await?))
    }

    /// What the caller may do with session `id` of `org_id`; a session that
    /// does not exist, or is another org's, is [`Standing::Unseen`].
    pub(super) async fn session_standing_by_id(
        &self,
        principal: &Principal,
        id: &str,
        org_id: &str,
    ) -> DomainResult<Standing> {
        match self.db().session_by_id(id).await? {
            Some(session) if session.org_id == org_id => self.session_standing(principal, &session).await,
            _ => Ok(Standing::Unseen),
        }
    }

    async fn session_standing(&self, principal: &Principal, session: &Session) -> DomainResult<Standing> {
        Ok(match self.relation_to(principal, session.owned()).await? {
            Relation::Outsider => Standing::Unseen,
            Relation::Manager => Standing::Manage,
            Relation::Member if session.access.shares_with(&principal.user_id) => {
                match session.access.permission {
                    Permission::Read => Standing::Read,
                    Permission::Continue => Standing::Continue,
                }
            }
            Relation::Member => Standing::Unseen,
        })
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

//! Sessions in the database. A session's history and totals are read from
//! its runs, so they can never disagree with them. Whom a session is shared
//! with is its `visibility` and `permission`, and, for `members`, the rows of
//! `run_session_members`.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::corrupt;
use crate::db::{Db, StoreError};
use crate::runs::model::InputMessage;
use crate::runs::sessions::{Access, Permission, Session, SessionMessage, SessionTotals, Visibility};

/// `SELECT <every session column> FROM run_sessions <rest>`.
macro_rules! select_sessions {
    ($rest:literal) => {
        concat!(
            "SELECT id, org_id, project_id, user_id, key_id, title, visibility, permission, created_at, updated_at \
             FROM run_sessions ",
            $rest
        )
    };
}

/// A session as its row holds it: without the members it is shared with.
fn session(row: &AnyRow) -> Result<Session, StoreError> {
    let visibility: String = row.try_get("visibility")?;
    let permission: String = row.try_get("permission")?;
    let access = Access {
        visibility: Visibility::parse(&visibility)
            .ok_or_else(|| corrupt(format!("run_sessions.visibility {visibility:?}")))?,
        permission: Permission::parse(&permission)
            .ok_or_else(|| corrupt(format!("run_sessions.permission {permission:?}")))?,
        members: Vec::new(),
    };
    Ok(Session {
        access,
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        project_id: row.try_get("project_id")?,
        user_id: row.try_get("user_id")?,
        key_id: row.try_get("key_id")?,
        title: row.try_get("title")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Db {
    pub async fn session_insert(&self, session: &Session) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO run_sessions (id, org_id, project_id, user_id, key_id, title, visibility, permission, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(&session.id)
        .bind(&session.org_id)
        .bind(&session.project_id)
        .bind(&session.user_id)
        .bind(&session.key_id)
        .bind(&session.title)
        .bind(session.access.visibility.as_str())
        .bind(session.access.permission.as_str())
        .bind(session.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn session_by_id(&self, id: &str) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(select_sessions!("WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?;
        let Some(mut session) = row.as_ref().map(session).transpose()? else { return Ok(None) };
        if session.access.visibility == Visibility::Members {
            let rows =
                sqlx::query("SELECT user_id FROM run_session_members WHERE session_id = $1 ORDER BY user_id")
                    .bind(id)
                    .fetch_all(self.pool())
                    .await?;
            session.access.members =
                rows.iter().map(|row| row.try_get("user_id")).collect::<Result<_, _>>()?;
        }
        Ok(Some(session))
    }

    /// Sessions of `org_id` in id order after `after`: only those `viewer`
    /// created or that are shared with them, and only `project_id`'s, when
    /// given.
    pub async fn sessions_in_org(
        &self,
        org_id: &str,
        viewer: Option<&str>,
        project_id: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(select_sessions!(
            "WHERE org_id = $1 AND ($2 = '' OR user_id = $2 OR visibility = 'org' OR (visibility = 'members' \
             AND EXISTS (SELECT 1 FROM run_session_members m WHERE m.session_id = run_sessions.id AND m.user_id = $2))) \
             AND ($3 = '' OR project_id = $3) AND id > $4 ORDER BY id LIMIT $5"
        ))
        .bind(org_id)
        .bind(viewer.unwrap_or(""))
        .bind(project_id.unwrap_or(""))
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut sessions = rows.iter().map(session).collect::<Result<Vec<_>, _>>()?;
        let shared: Vec<&str> = sessions
            .iter()
            .filter(|session| session.access.visibility == Visibility::Members)
            .map(|session| session.id.as_str())
            .collect();
        let (Some(first), Some(last)) = (shared.first(), shared.last()) else { return Ok(sessions) };
        // One read for the members of every session of the page shared by name.
        let rows = sqlx::query(
            "SELECT m.session_id, m.user_id FROM run_session_members m JOIN run_sessions s ON s.id = m.session_id \
             WHERE s.org_id = $1 AND s.id >= $2 AND s.id <= $3 ORDER BY m.session_id, m.user_id",
        )
        .bind(org_id)
        .bind(*first)
        .bind(*last)
        .fetch_all(self.pool())
        .await?;
        for row in &rows {
            let session_id: String = row.try_get("session_id")?;
            if let Some(session) = sessions.iter_mut().find(|session| session.id == session_id) {
                session.access.members.push(row.try_get("user_id")?);
            }
        }
        Ok(sessions)
    }

    /// Sets whom the session is shared with. False when it is gone.
    pub async fn session_access_set(&self, id: &str, access: &Access) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query("UPDATE run_sessions SET visibility = $1, permission = $2 WHERE id = $3")
            .bind(access.visibility.as_str())
            .bind(access.permission.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM run_session_members WHERE session_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for user_id in &access.members {
            sqlx::query("INSERT INTO run_session_members (session_id, user_id) VALUES ($1, $2)")
                .bind(id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The message and final answer of each completed run of the session, in order.
    pub async fn session_history(&self, id: &str) -> Result<Vec<SessionMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, session_message, output, created_at, finished_at FROM runs \
             WHERE session_id = $1 AND status = 'completed' ORDER BY created_at, id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let mut messages = Vec::with_capacity(rows.len() * 2);
        for row in &rows {
            let run_id: String = row.try_get("id")?;
            let message: Option<String> = row.try_get("session_message")?;
            let created_at: i64 = row.try_get("created_at")?;
            let finished_at: Option<i64> = row.try_get("finished_at")?;
            if let Some(message) = message {
                let message: InputMessage = serde_json::from_str(&message)
                    .map_err(|err| corrupt(format!("runs.session_message: {err}")))?;
                messages.push(SessionMessage {
                    role: message.role,
                    content: message.content,
                    run_id: run_id.clone(),
                    created_at,
                });
            }
            let output: Option<String> = row.try_get("output")?;
            messages.push(SessionMessage {
                role: "assistant".to_owned(),
                content: output.unwrap_or_default(),
                run_id,
                created_at: finished_at.unwrap_or(created_at),
            });
        }
        Ok(messages)
    }

    pub async fn session_totals(&self, id: &str) -> Result<SessionTotals, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS runs, CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt, \
             CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion, \
             CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost FROM runs WHERE session_id = $1",
        )
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        let active = sqlx::query(with_live_statuses!(
            "SELECT id FROM runs WHERE session_id = $1 AND status IN",
            "LIMIT 1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let count = |column: &str| -> Result<u64, StoreError> {
            Ok(u64::try_from(row.try_get::<i64, _>(column)?).unwrap_or_default())
        };
        Ok(SessionTotals {
            run_count: count("runs")?,
            prompt_tokens: count("prompt")?,
            completion_tokens: count("completion")?,
            cost_micros: row.try_get("cost")?,
            active_run_id: active.map(|row| row.try_get("id")).transpose()?,
        })
    }

    /// Deletes the session; its runs stay, no longer in it. False, with
    /// nothing deleted, while one of its runs is not over.
    pub async fn session_delete(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        // Taking the session's row first serialises this with a run joining it.
        sqlx::query("UPDATE run_sessions SET updated_at = updated_at WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let live = sqlx::query(with_live_statuses!(
            "SELECT id FROM runs WHERE session_id = $1 AND status IN",
            "LIMIT 1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if live.is_some() {
            return Ok(false);
        }
        sqlx::query("UPDATE runs SET session_id = NULL WHERE session_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM run_session_members WHERE session_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM run_sessions WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}

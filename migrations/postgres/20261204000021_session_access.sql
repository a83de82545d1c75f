-- Sharing a session: who besides its creator (and the owners and admins of
-- its org) may read it and continue it. `visibility` is `private` (nobody
-- else), `org` (every member of its org) or `members` (the users listed in
-- run_session_members); `permission` is `read` (its history and its runs) or
-- `continue` (also start runs in it). A listed user must be a member when
-- named, and is checked to still be one on every read, so leaving the org
-- ends the share.
ALTER TABLE run_sessions ADD COLUMN visibility TEXT NOT NULL DEFAULT 'private';
ALTER TABLE run_sessions ADD COLUMN permission TEXT NOT NULL DEFAULT 'read';
CREATE TABLE run_session_members (
    session_id  TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    PRIMARY KEY (session_id, user_id)
);
-- The sessions shared with a user, for their list of sessions.
CREATE INDEX run_session_members_user ON run_session_members (user_id, session_id);

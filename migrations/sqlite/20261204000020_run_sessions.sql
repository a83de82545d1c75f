-- Sessions: conversations that runs continue. A session's history and totals
-- are read from its runs (runs.session_id), so they never disagree with them.
CREATE TABLE run_sessions (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    project_id  TEXT,
    user_id     TEXT NOT NULL,
    key_id      TEXT,
    title       TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX run_sessions_org ON run_sessions (org_id, id);
ALTER TABLE runs ADD COLUMN session_id TEXT;
CREATE INDEX runs_session ON runs (session_id, created_at);
-- A session runs one run at a time: a second run that is not over is refused.
CREATE UNIQUE INDEX runs_one_live_per_session ON runs (session_id)
    WHERE status IN ('pending', 'running', 'requires_action', 'paused');

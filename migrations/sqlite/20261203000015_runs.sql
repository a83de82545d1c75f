-- Governed agent runs. A run's request is kept whole (`spec`, JSON); its
-- progress is the journal in `run_steps`, one row per model answer and per
-- tool call with its result, written before the next step begins. `runs`
-- holds the totals and what the run waits for, so reads need no replay.
--
-- A server drives a run while it holds its lease (`lease_owner`,
-- `lease_expires_at`); every claim bumps `lease_epoch`, and every write of the
-- driver names the epoch it claimed, so a server that lost the lease cannot
-- write.
CREATE TABLE runs (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    key_id            TEXT,
    project_id        TEXT,
    route             TEXT NOT NULL,
    status            TEXT NOT NULL,
    spec              TEXT NOT NULL,
    step_count        INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    cost_micros       BIGINT NOT NULL DEFAULT 0,
    output            TEXT,
    pending           TEXT,
    failure           TEXT,
    lease_owner       TEXT,
    lease_epoch       BIGINT NOT NULL DEFAULT 0,
    lease_expires_at  BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT
);
CREATE INDEX runs_org ON runs (org_id, id);
CREATE INDEX runs_claimable ON runs (status, lease_expires_at);

CREATE TABLE run_steps (
    run_id       TEXT NOT NULL,
    idx          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    tool_call_id TEXT,
    body         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (run_id, idx)
);
-- A tool call is answered once, whoever answers it.
CREATE UNIQUE INDEX run_steps_tool_call ON run_steps (run_id, tool_call_id);

ALTER TABLE usage_records ADD COLUMN run_id TEXT;
CREATE INDEX usage_records_run ON usage_records (run_id);

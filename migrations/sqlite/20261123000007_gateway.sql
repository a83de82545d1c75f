-- Model gateway: per-key limits (NULL means none) and one usage row per request.
ALTER TABLE api_keys ADD COLUMN allowed_models TEXT;
ALTER TABLE api_keys ADD COLUMN rpm_limit INTEGER;
ALTER TABLE api_keys ADD COLUMN tpm_limit INTEGER;
ALTER TABLE api_keys ADD COLUMN budget_micros INTEGER;

-- Written in batches off the request path; never updated.
CREATE TABLE usage_records (
    id                TEXT PRIMARY KEY,
    occurred_at       INTEGER NOT NULL,
    org_id            TEXT,
    project_id        TEXT,
    user_id           TEXT NOT NULL,
    key_id            TEXT,
    route             TEXT NOT NULL,
    provider          TEXT,
    upstream_model    TEXT,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost_micros       INTEGER NOT NULL,
    latency_ms        INTEGER NOT NULL,
    status            INTEGER NOT NULL
);
CREATE INDEX usage_records_org ON usage_records (org_id, occurred_at);
CREATE INDEX usage_records_key ON usage_records (key_id, occurred_at);

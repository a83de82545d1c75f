-- Deployment-wide key/value settings, shared by every replica.
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
);

INSERT INTO settings (key, value) VALUES ('deployment_id', 'dep_' || replace(gen_random_uuid()::text, '-', ''));

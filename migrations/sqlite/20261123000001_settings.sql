-- Deployment-wide key/value settings, shared by every replica.
CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

INSERT INTO settings (key, value) VALUES ('deployment_id', 'dep_' || lower(hex(randomblob(16))));

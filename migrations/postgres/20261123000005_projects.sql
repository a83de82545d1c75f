-- Projects group an organization's work; an API key may be narrowed to one.
CREATE TABLE projects (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX projects_org ON projects (org_id, id);

ALTER TABLE api_keys ADD COLUMN project_id TEXT REFERENCES projects (id) ON DELETE CASCADE;

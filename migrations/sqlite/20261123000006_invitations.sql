-- Pending invitations to an organization, for addresses without an account.
-- The token is stored as a SHA-256 digest only; it works once, within its
-- lifetime. Re-inviting revokes the open invitation and issues a new one.
CREATE TABLE org_invitations (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'external')),
    token_hash  TEXT NOT NULL UNIQUE,
    invited_by  TEXT REFERENCES users (id) ON DELETE SET NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    accepted_at BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX org_invitations_org_email ON org_invitations (org_id, email);

-- Email flows: address verification codes, password-reset tokens, and the
-- outbox every mail is written to before it is delivered. Codes and tokens
-- are stored as SHA-256 digests only.

-- At most one live verification code per user; resending replaces it.
CREATE TABLE email_verifications (
    user_id        TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    code_hash      TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 0,
    last_resent_at BIGINT
);

CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX password_resets_user ON password_resets (user_id);

-- `pending` rows wait for SMTP delivery (retried with backoff), `sent` ones
-- were delivered (their body is then dropped), `dev` ones stay here because no
-- SMTP server is configured (`switchyard outbox` prints them), `failed` ones
-- can never be delivered (an unusable address).
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    recipient       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'dev', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_recipient ON outbox (recipient, created_at);

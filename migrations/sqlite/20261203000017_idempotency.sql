-- Idempotency keys: the first request a client sends with an
-- `Idempotency-Key` reserves (owner, key) by inserting the row in progress;
-- its answer is stored when it succeeds, and a request with the same key
-- and the same request hash replays it. `owner` is who sent the key (user
-- and API key, or user and session), so equal keys of two clients never
-- meet; `request_hash` is the SHA-256 of the operation, the canonical body
-- and the headers that change its meaning. Rows are swept by housekeeping
-- once older than the retention (at least 24 hours).
CREATE TABLE idempotency_keys (
    owner           TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    operation       TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    state           TEXT NOT NULL,
    response_status BIGINT,
    response_body   TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (owner, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

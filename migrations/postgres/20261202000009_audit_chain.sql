-- The audit trail as hash chains, one per organization (`chain` is the org
-- id, or '' for account events outside any org): each event stores its
-- position, the hash of the event before it and its own hash, so an edited,
-- removed or reordered event breaks every hash after it. `audit_chains`
-- holds each chain's head; appending locks that row, so concurrent writers
-- (several replicas included) extend a chain one at a time. Events written
-- before this migration are chained at the next start.
ALTER TABLE audit_events ADD COLUMN chain TEXT;
ALTER TABLE audit_events ADD COLUMN seq BIGINT;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_events_chain_seq ON audit_events (chain, seq);
-- Finds the events still to chain without reading the whole trail at each start.
CREATE INDEX audit_events_unchained ON audit_events (occurred_at, id) WHERE hash IS NULL;

CREATE TABLE audit_chains (
    chain     TEXT PRIMARY KEY,
    seq       BIGINT NOT NULL,
    head_hash TEXT NOT NULL
);

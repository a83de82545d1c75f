-- Bumped whenever something changes what API keys may do (a key revoked, a
-- member removed, an org or project deleted, caps changed). Replicas on one
-- PostgreSQL database read it with each API-key request and forget the keys
-- they hold in memory when it moved, so a change made through one replica
-- holds on the next request to any other.
CREATE TABLE key_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO key_epoch (id, epoch) VALUES (1, 0);

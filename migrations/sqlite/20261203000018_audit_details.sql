-- What some events record beyond who did what to which target: the gateway
-- route of a run (so the trail can be filtered by it), and details as JSON
-- text, such as a tool call's name, the digest of its arguments and its
-- outcome. When an event has either, both are part of its hash.
ALTER TABLE audit_events ADD COLUMN route TEXT;
ALTER TABLE audit_events ADD COLUMN details TEXT;
CREATE INDEX audit_events_route ON audit_events (chain, route, seq);

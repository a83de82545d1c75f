-- An appended event becomes its chain's head in the statement that inserts
-- it: the head's position was taken (and its row locked) just before, and
-- the head hash follows the event that holds that position, so appending
-- takes two statements instead of three. Events chained later (at start, by
-- an update) set the head themselves.
CREATE TRIGGER audit_events_chain_head AFTER INSERT ON audit_events
WHEN NEW.hash IS NOT NULL
BEGIN
    UPDATE audit_chains SET head_hash = NEW.hash WHERE chain = NEW.chain AND seq = NEW.seq;
END;

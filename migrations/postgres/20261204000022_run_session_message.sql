-- The message a run added to its session (JSON text, as in the run's spec),
-- in a column of its own: a session's history is read from these and the
-- runs' outputs, without decoding every run's spec, which holds the whole
-- history the run started from.
ALTER TABLE runs ADD COLUMN session_message TEXT;
UPDATE runs SET session_message = (spec::jsonb -> 'session_message')::text
    WHERE session_id IS NOT NULL AND jsonb_typeof(spec::jsonb -> 'session_message') = 'object';

-- What a user sees of their sessions: where each began and when it last
-- rotated its refresh token.
ALTER TABLE auth_sessions ADD COLUMN ip TEXT;
ALTER TABLE auth_sessions ADD COLUMN refreshed_at BIGINT;

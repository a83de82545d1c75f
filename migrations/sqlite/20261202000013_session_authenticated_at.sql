-- When the session's user last proved who they are (password or second
-- factor): at sign-in, and again at POST /v1/auth/reauthenticate. NULL is
-- the session's start.
ALTER TABLE auth_sessions ADD COLUMN authenticated_at BIGINT;

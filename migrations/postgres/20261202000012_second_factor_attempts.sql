-- Second-factor attempts per account, across challenges and addresses: each
-- attempt is claimed before the code is checked, a success starts afresh.
ALTER TABLE users ADD COLUMN second_factor_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN second_factor_window_start BIGINT NOT NULL DEFAULT 0;

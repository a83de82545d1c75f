-- Daily gateway spend caps, in micro-USD per UTC day; NULL means none.
ALTER TABLE orgs ADD COLUMN daily_cost_cap_micros BIGINT;
ALTER TABLE orgs ADD COLUMN member_daily_cost_cap_micros BIGINT;

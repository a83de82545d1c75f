-- Whether a usage row's tokens are the provider's report or Switchyard's own
-- count (the provider reported none, or the client left before it did).
ALTER TABLE usage_records ADD COLUMN usage_source TEXT NOT NULL DEFAULT 'reported';

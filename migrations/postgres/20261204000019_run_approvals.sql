-- What a paused run waits for an approver to decide (JSON text): a tool call
-- the route's policy wants approved, the final answer, or a tool call whose
-- outcome a crash left unknown. Decisions are journaled in run_steps.
ALTER TABLE runs ADD COLUMN pending_approval TEXT;

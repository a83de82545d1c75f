-- What a paused run waits for an approver to decide (JSON text): a tool call
-- the route's policy wants approved, the final answer, or a tool call whose
-- outcome a crash left unknown. Decisions are journaled in run_steps.
ALTER TABLE runs ADD COLUMN pending_approval TEXT;
-- The call of a tool that is not idempotent a driver started and has not
-- journaled the result of (JSON text: the call's id and the step count when
-- it started); a driver that finds one left behind knows the call's outcome
-- is unknown, and asks an approver before making it again.
ALTER TABLE runs ADD COLUMN tool_in_flight TEXT;

-- Restart drills (issue 12): the `drill` action kind, and each drill's outcome (owned by libs/actions, drills.ts).
-- The kind list must equal ActionKind in libs/contracts/src/action.ts; libs/actions' test compares them.
ALTER TABLE actions DROP CONSTRAINT IF EXISTS actions_kind_check;
ALTER TABLE actions ADD CONSTRAINT actions_kind_check CHECK (kind IN ('start', 'stop', 'restart', 'deploy', 'pull', 'drill'));

-- One row per drill that ran to an end (passed, missed, refused at run time, failed). Times are ms after the kill.
CREATE TABLE IF NOT EXISTS drill_results (
  drill_id           uuid PRIMARY KEY REFERENCES actions (id),
  node               text NOT NULL,
  service            text NOT NULL,
  verdict            text NOT NULL CHECK (verdict IN ('passed', 'missed', 'refused', 'failed')),
  reason             text NOT NULL,
  objective_ms       integer NOT NULL,
  approve_restart    boolean NOT NULL,
  started_at         timestamptz,
  detected_ms        integer,
  proposed_ms        integer,
  approved_ms        integer,
  recovered_ms       integer,
  restart_action_id  uuid REFERENCES actions (id),
  approved_by        text,
  finished_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS drill_results_service ON drill_results (node, service, finished_at DESC);

-- Action state machine and its audit log. Transitions are conditional UPDATEs (WHERE state = $from).
CREATE TABLE IF NOT EXISTS actions (
  id           uuid PRIMARY KEY,
  node         text NOT NULL,
  service      text NOT NULL,
  kind         text NOT NULL CHECK (kind IN ('start', 'stop', 'restart')),
  state        text NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'expired', 'running', 'succeeded', 'failed', 'failed_unknown')),
  reason       text NOT NULL,
  drift_key    text,
  proposed_by  text NOT NULL,
  diagnosis    text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  result       text,
  traceparent  text,
  -- which executor runs it, and its lease; a running action whose lease lapsed lost its executor
  executor_id  text,
  lease_until  timestamptz
);
-- One open action per (node, service, kind): proposals across cycles cannot duplicate.
CREATE UNIQUE INDEX IF NOT EXISTS actions_one_open ON actions (node, service, kind) WHERE state IN ('pending', 'approved', 'running');
CREATE INDEX IF NOT EXISTS actions_state ON actions (state, created_at);

CREATE TABLE IF NOT EXISTS action_audit (
  id          bigserial PRIMARY KEY,
  action_id   uuid NOT NULL REFERENCES actions (id),
  at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  from_state  text,
  to_state    text NOT NULL,
  actor       text NOT NULL,
  channel     text NOT NULL,
  detail      text
);
CREATE INDEX IF NOT EXISTS action_audit_action ON action_audit (action_id, id);

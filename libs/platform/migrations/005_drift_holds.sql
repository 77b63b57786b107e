-- An operator's "no" that sticks: a rejected action holds its drift (same node, service, kind and cause) until the
-- drift changes or clears, its `until` passes, or an operator releases it. Owned by libs/actions (repository.ts).
CREATE TABLE IF NOT EXISTS drift_holds (
  action_id   uuid PRIMARY KEY REFERENCES actions (id),
  node        text NOT NULL,
  service     text NOT NULL,
  kind        text NOT NULL,
  nodes       jsonb NOT NULL,
  -- the drift kind the proposal answered (down, unhealthy, ...); null: held by time only
  cause       text,
  -- a deploy's target revision
  target      text,
  held_by     text NOT NULL,
  channel     text NOT NULL,
  reason      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  until       timestamptz,
  ended_at    timestamptz,
  end_reason  text
);
CREATE INDEX IF NOT EXISTS drift_holds_active ON drift_holds (created_at) WHERE ended_at IS NULL;

-- Alert groups (issue 12): notifications go out per group of related alerts (one node's alerts, one outage such as
-- many nodes stale at once), Alertmanager-style: a group's first notice waits group_wait, changes to it at most every
-- group_interval, an unchanged group is repeated every repeat_interval. The alerts rows stay one per episode.
CREATE TABLE IF NOT EXISTS alert_groups (
  id             bigserial PRIMARY KEY,
  group_key      text NOT NULL,
  state          text NOT NULL CHECK (state IN ('firing', 'resolved')),
  first_seen     timestamptz NOT NULL,
  -- what the last notice listed (id, fingerprint, rule, severity, title, labels, first_seen of each alert): the next
  -- notice says what changed, a resolved notice what it was about
  notified       jsonb NOT NULL DEFAULT '[]'::jsonb,
  last_notified  timestamptz,
  notifications  integer NOT NULL DEFAULT 0,
  resolved_at    timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS alert_groups_one_firing ON alert_groups (group_key) WHERE state = 'firing';

ALTER TABLE alerts ADD COLUMN IF NOT EXISTS group_key text;
-- the flap detector counts recent episodes per fingerprint
CREATE INDEX IF NOT EXISTS alerts_fingerprint_first_seen ON alerts (fingerprint, first_seen);
CREATE INDEX IF NOT EXISTS alerts_recent ON alerts (first_seen);
CREATE INDEX IF NOT EXISTS alerts_recently_resolved ON alerts (resolved_at) WHERE resolved_at IS NOT NULL;

-- A notification belongs to an alert (before groups) or to a group.
ALTER TABLE alert_notifications ALTER COLUMN alert_id DROP NOT NULL;
ALTER TABLE alert_notifications ADD COLUMN IF NOT EXISTS group_id bigint REFERENCES alert_groups (id);
DO $$ BEGIN
  ALTER TABLE alert_notifications ADD CONSTRAINT alert_notifications_owner CHECK (alert_id IS NOT NULL OR group_id IS NOT NULL);
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

-- Incident memory, owned by the planner (services/planner/src/incidents/). One incident per failure of one service:
-- the supervisor's escalations about it become its tasks; its actions, audit and events are read from their owners.
CREATE TABLE IF NOT EXISTS planner_incidents (
  id             bigserial PRIMARY KEY,
  node           text NOT NULL,
  service        text NOT NULL,
  -- the failure class (e.g. down:exit=3): with the service, what "the same failure" means
  signature      text NOT NULL,
  state          text NOT NULL CHECK (state IN ('open', 'resolved')),
  title          text NOT NULL,
  started_at     timestamptz NOT NULL,
  opened_at      timestamptz NOT NULL,
  resolved_at    timestamptz,
  outcome        text,
  -- when the planner first saw its service recovered (the incident ends after a quiet period)
  recovering_since timestamptz,
  diagnosis      text,
  postmortem     text,
  postmortem_at  timestamptz,
  -- full-text over what was said about it: similar past incidents are found by words too
  search         tsvector GENERATED ALWAYS AS (
                   to_tsvector('english', coalesce(title, '') || ' ' || coalesce(diagnosis, '') || ' ' || coalesce(postmortem, ''))) STORED
);
-- At most one open incident per service: a new escalation about it joins the open one.
CREATE UNIQUE INDEX IF NOT EXISTS planner_incidents_one_open ON planner_incidents (node, service) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS planner_incidents_signature ON planner_incidents (service, signature, opened_at DESC);
CREATE INDEX IF NOT EXISTS planner_incidents_opened ON planner_incidents (opened_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS planner_incidents_search ON planner_incidents USING gin (search);

-- Which tasks belong to which incident (a task belongs to one at most).
CREATE TABLE IF NOT EXISTS planner_incident_tasks (
  task_id      text PRIMARY KEY REFERENCES planner_tasks (id),
  incident_id  bigint NOT NULL REFERENCES planner_incidents (id)
);
CREATE INDEX IF NOT EXISTS planner_incident_tasks_incident ON planner_incident_tasks (incident_id);

-- "This keeps happening": the same signature on the same service N times within the window, raised once per window.
CREATE TABLE IF NOT EXISTS planner_incident_recurrences (
  id            bigserial PRIMARY KEY,
  node          text NOT NULL,
  service       text NOT NULL,
  signature     text NOT NULL,
  incident_ids  bigint[] NOT NULL,
  raised_at     timestamptz NOT NULL,
  window_until  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS planner_incident_recurrences_key ON planner_incident_recurrences (node, service, signature, window_until DESC);

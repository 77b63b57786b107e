-- Planner: task queue (taken with FOR UPDATE SKIP LOCKED), its steps, model calls, proposals,
-- a dead-letter table that keeps the reason, and a cost ledger whose reservations enforce the caps.
-- The LangGraph checkpointer creates its own tables (checkpoints, checkpoint_blobs, ...) via setup().
CREATE TABLE IF NOT EXISTS planner_tasks (
  id               text PRIMARY KEY,
  -- insertion order: a conversation's tasks run one at a time, oldest first
  seq              bigserial NOT NULL UNIQUE,
  state            text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'expired', 'dead')),
  source           text NOT NULL,
  "user"           text NOT NULL,
  content          text NOT NULL,
  conversation_id  text NOT NULL,
  target_agent     text,
  agent            text,
  restricted       boolean NOT NULL DEFAULT false,
  idempotency_key  text UNIQUE,
  evidence         jsonb,
  -- W3C trace context of the enqueue span: the worker continues the trace from here
  traceparent      text,
  answer           text,
  error            text,
  attempts         integer NOT NULL DEFAULT 0,
  max_attempts     integer NOT NULL DEFAULT 3,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  worker_id        text,
  lease_until      timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz
);
CREATE INDEX IF NOT EXISTS planner_tasks_ready ON planner_tasks (next_attempt_at, seq) WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS planner_tasks_running ON planner_tasks (lease_until) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS planner_tasks_conversation ON planner_tasks (conversation_id, seq);
CREATE INDEX IF NOT EXISTS planner_tasks_created ON planner_tasks (created_at DESC, seq DESC);

CREATE TABLE IF NOT EXISTS planner_task_steps (
  id       bigserial PRIMARY KEY,
  task_id  text NOT NULL REFERENCES planner_tasks (id),
  at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  kind     text NOT NULL,
  message  text NOT NULL
);
CREATE INDEX IF NOT EXISTS planner_task_steps_task ON planner_task_steps (task_id, id);

-- One row per model call (or rule-based answer): which group/model served it, the router's decision and its reason.
CREATE TABLE IF NOT EXISTS planner_model_calls (
  id             bigserial PRIMARY KEY,
  task_id        text NOT NULL REFERENCES planner_tasks (id),
  at             timestamptz NOT NULL DEFAULT clock_timestamp(),
  agent          text NOT NULL,
  provider       text NOT NULL CHECK (provider IN ('ollama', 'anthropic', 'rules')),
  model_group    text NOT NULL,
  model          text NOT NULL,
  decision       text NOT NULL,
  reason         text NOT NULL,
  input_tokens   integer NOT NULL DEFAULT 0,
  output_tokens  integer NOT NULL DEFAULT 0,
  cost_usd       numeric(14, 6) NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS planner_model_calls_task ON planner_model_calls (task_id, id);

-- Every proposal a model (or the runbooks) made; rejected ones keep the reason and never reach the executor.
CREATE TABLE IF NOT EXISTS planner_proposals (
  id           bigserial PRIMARY KEY,
  task_id      text NOT NULL REFERENCES planner_tasks (id),
  at           timestamptz NOT NULL DEFAULT clock_timestamp(),
  action_kind  text NOT NULL,
  node         text,
  service      text,
  accepted     boolean NOT NULL,
  reason       text NOT NULL,
  action_id    uuid
);
CREATE INDEX IF NOT EXISTS planner_proposals_task ON planner_proposals (task_id, id);

CREATE TABLE IF NOT EXISTS planner_dead_letters (
  task_id   text PRIMARY KEY REFERENCES planner_tasks (id),
  state     text NOT NULL CHECK (state IN ('failed', 'expired', 'dead')),
  reason    text NOT NULL,
  detail    text,
  attempts  integer NOT NULL,
  dead_at   timestamptz NOT NULL DEFAULT now()
);

-- Claude spend. A row is `reserved` (estimated, counted against every cap) before the call,
-- then `settled` with the real usage x prices, or `released` (counts nothing) when the call was not made or failed.
CREATE TABLE IF NOT EXISTS planner_cost_ledger (
  id             bigserial PRIMARY KEY,
  task_id        text NOT NULL,
  agent          text NOT NULL,
  source         text NOT NULL,
  model_group    text NOT NULL,
  model          text NOT NULL,
  day            date NOT NULL,
  state          text NOT NULL CHECK (state IN ('reserved', 'settled', 'released')),
  reserved_usd   numeric(14, 6) NOT NULL,
  actual_usd     numeric(14, 6),
  input_tokens   integer,
  output_tokens  integer,
  created_at     timestamptz NOT NULL DEFAULT now(),
  settled_at     timestamptz
);
CREATE INDEX IF NOT EXISTS planner_cost_ledger_day ON planner_cost_ledger (day, agent);
CREATE INDEX IF NOT EXISTS planner_cost_ledger_task ON planner_cost_ledger (task_id);

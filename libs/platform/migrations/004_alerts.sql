-- Alerts (issue 4): the alerter's state, its notification outbox, single-use approval tokens and Telegram button ids.

-- One row per alert episode. A fingerprint fires at most once at a time (partial unique index); when it clears the
-- row is resolved and kept as history, and a later recurrence is a new row.
CREATE TABLE IF NOT EXISTS alerts (
  id                     bigserial PRIMARY KEY,
  fingerprint            text NOT NULL,
  rule                   text NOT NULL,
  severity               text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
  state                  text NOT NULL CHECK (state IN ('firing', 'resolved')),
  title                  text NOT NULL,
  message                text NOT NULL,
  labels                 jsonb NOT NULL DEFAULT '{}'::jsonb,
  first_seen             timestamptz NOT NULL,
  last_seen              timestamptz NOT NULL,
  resolved_at            timestamptz,
  last_notified          timestamptz,
  -- notifications queued for this alert (firing, re-notifications, resolved), over all sinks
  notifications          integer NOT NULL DEFAULT 0,
  -- delivery attempts made for this alert's notifications, successful or not
  notification_attempts  integer NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_firing ON alerts (fingerprint) WHERE state = 'firing';
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state, last_seen);

-- Outbox: every notification is a row per sink before anything is sent, so a crash or a failing sink never drops
-- one. Rows are retried with backoff until sent; a row that keeps failing is `failing` (logged, counted) and is
-- still retried at the slowest interval.
CREATE TABLE IF NOT EXISTS alert_notifications (
  id               bigserial PRIMARY KEY,
  alert_id         bigint NOT NULL REFERENCES alerts (id),
  sink             text NOT NULL,
  kind             text NOT NULL CHECK (kind IN ('firing', 'renotify', 'resolved')),
  payload          jsonb NOT NULL,
  state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failing')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  sent_at          timestamptz
);
CREATE INDEX IF NOT EXISTS alert_notifications_due ON alert_notifications (next_attempt_at) WHERE state <> 'sent';

-- Approval tokens minted by the executor for ntfy buttons. The token itself is never stored: only its id (a random
-- nonce inside the signed token), what it may do, and when it was used. A token works once.
CREATE TABLE IF NOT EXISTS approval_tokens (
  id            text PRIMARY KEY,
  action_id     uuid NOT NULL REFERENCES actions (id),
  decision      text NOT NULL CHECK (decision IN ('approve', 'reject')),
  exec_hash     text NOT NULL,
  issued_at     timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  used_at       timestamptz,
  used_outcome  text
);
CREATE INDEX IF NOT EXISTS approval_tokens_action ON approval_tokens (action_id);

-- Telegram inline buttons carry only an opaque id (callback_data is limited to 64 bytes); this maps it back.
CREATE TABLE IF NOT EXISTS telegram_callbacks (
  id          text PRIMARY KEY,
  action_id   uuid NOT NULL REFERENCES actions (id),
  decision    text NOT NULL CHECK (decision IN ('approve', 'reject')),
  chat_id     text,
  message_id  bigint,
  created_at  timestamptz NOT NULL DEFAULT now(),
  used_at     timestamptz,
  used_by     text,
  outcome     text
);
CREATE INDEX IF NOT EXISTS telegram_callbacks_action ON telegram_callbacks (action_id);

-- A Telegram button is bound like an ntfy one (issue 13): the alerter mints the executor's signed, single-use,
-- expiring approval token for it and keeps it here, because callback_data holds at most 64 bytes (the button itself
-- carries the opaque id). A press redeems the token at the executor; a row without one (sent before this) decides
-- nothing.
ALTER TABLE telegram_callbacks ADD COLUMN IF NOT EXISTS token text;

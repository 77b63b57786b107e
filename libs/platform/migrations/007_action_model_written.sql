-- Which texts of an action a model wrote (reason, diagnosis): approval screens label them as untrusted.
ALTER TABLE actions ADD COLUMN IF NOT EXISTS model_written text[] NOT NULL DEFAULT '{}';

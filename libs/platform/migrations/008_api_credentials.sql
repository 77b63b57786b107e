-- Named credentials of the executor's HTTP API (issue 13), owned by services/executor (credentials.ts): a token is
-- stored only as its SHA-256 (it is 256 random bits, so a fast hash is enough) and shown once, at creation.
-- A revoked row stays for the record until the name is given to a new credential.
CREATE TABLE IF NOT EXISTS api_credentials (
  name        text PRIMARY KEY,
  role        text NOT NULL CHECK (role IN ('viewer', 'approver', 'admin', 'alerter')),
  token_hash  text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  created_by  text NOT NULL,
  revoked_at  timestamptz,
  revoked_by  text
);

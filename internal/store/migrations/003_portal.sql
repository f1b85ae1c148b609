-- Local accounts (the embedded default; facilities use OIDC) and portal
-- sessions. Only hashes of passwords and session secrets are stored.
CREATE TABLE account (
  name          TEXT PRIMARY KEY,
  password_hash TEXT NOT NULL,
  groups        TEXT NOT NULL DEFAULT '',
  created_at    INTEGER NOT NULL
);

CREATE TABLE session (
  hash       TEXT PRIMARY KEY,
  subject    TEXT NOT NULL,
  groups     TEXT NOT NULL DEFAULT '',
  name       TEXT NOT NULL DEFAULT '',
  csrf       TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX session_expires ON session (expires_at);

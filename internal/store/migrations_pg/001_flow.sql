-- Flows, tokens, portal accounts and sessions, compute tasks, on
-- PostgreSQL (times are Unix microseconds, as on SQLite). The catalog has
-- its own tables (internal/catalog/postgres).
CREATE TABLE run (
  id TEXT PRIMARY KEY, flow TEXT NOT NULL, sha256 TEXT NOT NULL, file_name TEXT NOT NULL,
  size BIGINT NOT NULL DEFAULT 0, agent TEXT NOT NULL DEFAULT '', instrument TEXT NOT NULL DEFAULT '',
  upload_id TEXT NOT NULL DEFAULT '', stored_path TEXT NOT NULL DEFAULT '', state TEXT NOT NULL,
  created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, finished_at BIGINT,
  error TEXT NOT NULL DEFAULT '', record_id TEXT NOT NULL DEFAULT '', meta TEXT NOT NULL DEFAULT '{}',
  UNIQUE (flow, sha256)
);
CREATE INDEX run_created ON run (created_at);
CREATE INDEX run_state ON run (state);
CREATE INDEX run_sha ON run (sha256);
CREATE TABLE step (
  run_id TEXT NOT NULL REFERENCES run (id) ON DELETE CASCADE, idx INTEGER NOT NULL, name TEXT NOT NULL,
  kind TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  ready_at BIGINT, started_at BIGINT, finished_at BIGINT, active_us BIGINT NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '', output TEXT NOT NULL DEFAULT '{}',
  PRIMARY KEY (run_id, idx)
);
CREATE TABLE token (hash TEXT PRIMARY KEY, name TEXT NOT NULL, principal TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE account (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, groups TEXT NOT NULL DEFAULT '', created_at BIGINT NOT NULL);
CREATE TABLE session (
  hash TEXT PRIMARY KEY, subject TEXT NOT NULL, groups TEXT NOT NULL DEFAULT '', name TEXT NOT NULL DEFAULT '',
  csrf TEXT NOT NULL, expires_at BIGINT NOT NULL
);
CREATE INDEX session_expires ON session (expires_at);
CREATE TABLE task (
  id TEXT PRIMARY KEY, run_id TEXT NOT NULL, step INTEGER NOT NULL, kind TEXT NOT NULL, input TEXT NOT NULL,
  state TEXT NOT NULL, endpoint TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
  lease_until BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,
  error TEXT NOT NULL DEFAULT '', result TEXT NOT NULL DEFAULT ''
);
CREATE INDEX task_state ON task (state, created_at);

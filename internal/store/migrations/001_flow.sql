-- Flows: one run per (flow, file content); steps in order. Times are Unix
-- microseconds.
CREATE TABLE run (
  id          TEXT PRIMARY KEY,
  flow        TEXT NOT NULL,
  sha256      TEXT NOT NULL,
  file_name   TEXT NOT NULL,
  size        INTEGER NOT NULL DEFAULT 0,
  agent       TEXT NOT NULL DEFAULT '',
  instrument  TEXT NOT NULL DEFAULT '',
  upload_id   TEXT NOT NULL DEFAULT '',
  stored_path TEXT NOT NULL DEFAULT '',
  state       TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  finished_at INTEGER,
  error       TEXT NOT NULL DEFAULT '',
  record_id   TEXT NOT NULL DEFAULT '',
  meta        TEXT NOT NULL DEFAULT '{}',
  UNIQUE (flow, sha256)
);
CREATE INDEX run_created ON run (created_at);
CREATE INDEX run_state ON run (state);
CREATE INDEX run_sha ON run (sha256);

CREATE TABLE step (
  run_id      TEXT NOT NULL REFERENCES run (id) ON DELETE CASCADE,
  idx         INTEGER NOT NULL,
  name        TEXT NOT NULL,
  kind        TEXT NOT NULL,
  state       TEXT NOT NULL,
  attempts    INTEGER NOT NULL DEFAULT 0,
  ready_at    INTEGER,
  started_at  INTEGER,
  finished_at INTEGER,
  active_us   INTEGER NOT NULL DEFAULT 0,
  error       TEXT NOT NULL DEFAULT '',
  output      TEXT NOT NULL DEFAULT '{}',
  PRIMARY KEY (run_id, idx)
);

-- API tokens (agents, endpoints, scripts): only the SHA-256 is kept.
CREATE TABLE token (
  hash       TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  principal  TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

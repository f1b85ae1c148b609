-- picoflow:foreign-keys-off (the run table is rebuilt; SQLite cannot change
-- a UNIQUE constraint in place)
-- A run's file content may be analysed again (a re-analysis campaign, a
-- repair): such runs carry a rerun key, and each (flow, content, key) runs
-- once. Runs started by an upload have the empty key, as before.
CREATE TABLE run_new (
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
  rerun_key   TEXT NOT NULL DEFAULT '',
  UNIQUE (flow, sha256, rerun_key)
);
INSERT INTO run_new (id, flow, sha256, file_name, size, agent, instrument, upload_id, stored_path, state, created_at, updated_at, finished_at, error, record_id, meta)
  SELECT id, flow, sha256, file_name, size, agent, instrument, upload_id, stored_path, state, created_at, updated_at, finished_at, error, record_id, meta FROM run;
DROP TABLE run;
ALTER TABLE run_new RENAME TO run;
CREATE INDEX run_created ON run (created_at);
CREATE INDEX run_state ON run (state);
CREATE INDEX run_sha ON run (sha256);

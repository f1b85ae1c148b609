-- Work handed to compute endpoints (HPC login nodes that pull tasks).
CREATE TABLE task (
  id          TEXT PRIMARY KEY,
  run_id      TEXT NOT NULL,
  step        INTEGER NOT NULL,
  kind        TEXT NOT NULL,
  input       TEXT NOT NULL,
  state       TEXT NOT NULL,
  endpoint    TEXT NOT NULL DEFAULT '',
  attempts    INTEGER NOT NULL DEFAULT 0,
  lease_until INTEGER NOT NULL DEFAULT 0,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  error       TEXT NOT NULL DEFAULT '',
  result      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX task_state ON task (state, created_at);

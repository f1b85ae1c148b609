-- Who may see a run (see the SQLite migration 009_run_reader.sql).
CREATE TABLE run_reader (
  run_id TEXT NOT NULL REFERENCES run (id) ON DELETE CASCADE, principal TEXT NOT NULL,
  PRIMARY KEY (run_id, principal)
);
CREATE INDEX run_reader_principal ON run_reader (principal, run_id);
INSERT INTO run_reader (run_id, principal) SELECT id, agent FROM run WHERE agent LIKE '%:%';
ALTER TABLE token ADD COLUMN flows TEXT NOT NULL DEFAULT '';

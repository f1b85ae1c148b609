-- Who may see a run: the principal that sent its file (the token's
-- subject), the readers of the record it publishes (the flow's access
-- list) and anyone who later sent the same bytes. Administrators see every
-- run. Principals compare exactly.
CREATE TABLE run_reader (
  run_id    TEXT NOT NULL REFERENCES run (id) ON DELETE CASCADE,
  principal TEXT NOT NULL,
  PRIMARY KEY (run_id, principal)
);
CREATE INDEX run_reader_principal ON run_reader (principal, run_id);
INSERT INTO run_reader (run_id, principal) SELECT id, agent FROM run WHERE agent LIKE '%:%';

-- The flows a token may start (comma-separated; empty: any flow).
ALTER TABLE token ADD COLUMN flows TEXT NOT NULL DEFAULT '';

-- Principals compare exactly, but the catalog's FTS5 access filter folds
-- case: this index finds at once whether a query's principals have
-- case-variants in any access list (then the search filters exactly).
CREATE INDEX record_acl_lower ON record_acl (lower(principal));

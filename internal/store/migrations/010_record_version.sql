-- Record versions: every publication of a record (a first analysis, a
-- re-analysis) is kept; record holds the newest. A version is replaced only
-- by a publication from the same run (a retried step).
CREATE TABLE record_version (
  record_id    TEXT NOT NULL,
  version      INTEGER NOT NULL,
  run_id       TEXT NOT NULL DEFAULT '',
  published_at INTEGER NOT NULL,
  doc          TEXT NOT NULL,
  PRIMARY KEY (record_id, version)
);
CREATE INDEX record_version_run ON record_version (record_id, run_id);
ALTER TABLE record ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
-- The analysis version that made the newest version, as a sortable key
-- (buildinfo.SortKey), for "made before version X".
ALTER TABLE record ADD COLUMN version_key TEXT NOT NULL DEFAULT '';
INSERT INTO record_version (record_id, version, run_id, published_at, doc) SELECT id, 1, run_id, published_at, doc FROM record;

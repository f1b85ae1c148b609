-- Re-analysis campaigns: records selected by a search, one run per record,
-- throttled; each item's state is kept so a restarted server resumes.
CREATE TABLE campaign (
  id          TEXT PRIMARY KEY,
  spec        TEXT NOT NULL,
  state       TEXT NOT NULL,
  created_by  TEXT NOT NULL,
  principals  TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  finished_at INTEGER
);
CREATE INDEX campaign_state ON campaign (state);
CREATE TABLE campaign_item (
  campaign_id TEXT NOT NULL REFERENCES campaign (id) ON DELETE CASCADE,
  seq         INTEGER NOT NULL,
  record_id   TEXT NOT NULL,
  state       TEXT NOT NULL,
  run_id      TEXT NOT NULL DEFAULT '',
  error       TEXT NOT NULL DEFAULT '',
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (campaign_id, seq)
);
CREATE INDEX campaign_item_state ON campaign_item (campaign_id, state, seq);

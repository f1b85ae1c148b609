-- Compute endpoints the server has heard from, through any replica: when
-- each first asked for work (a batch block's node start-up ends there),
-- when it was last heard, and how many tasks it finished.
CREATE TABLE endpoint (
  name       TEXT PRIMARY KEY,
  first_seen INTEGER NOT NULL,
  last_seen  INTEGER NOT NULL,
  done       INTEGER NOT NULL DEFAULT 0,
  failed     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX endpoint_last_seen ON endpoint (last_seen);

-- Compute endpoints the server has heard from, through any replica (see
-- the SQLite migration 008_endpoint.sql).
CREATE TABLE endpoint (
  name TEXT PRIMARY KEY, first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL,
  done INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX endpoint_last_seen ON endpoint (last_seen);

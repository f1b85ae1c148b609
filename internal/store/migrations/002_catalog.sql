-- Catalog: one row per published record, its elements and ACL, and a
-- contentless FTS5 index keyed by the record's rowid.
CREATE TABLE record (
  id           TEXT PRIMARY KEY,
  doc          TEXT NOT NULL,
  title        TEXT NOT NULL,
  description  TEXT NOT NULL DEFAULT '',
  created_at   INTEGER NOT NULL,
  published_at INTEGER NOT NULL,
  instrument   TEXT NOT NULL DEFAULT '',
  kind         TEXT NOT NULL DEFAULT '',
  run_id       TEXT NOT NULL DEFAULT '',
  sha256       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX record_created ON record (created_at);
CREATE INDEX record_kind ON record (kind);
CREATE INDEX record_instrument ON record (instrument);

CREATE TABLE record_element (
  record_id TEXT NOT NULL REFERENCES record (id) ON DELETE CASCADE,
  element   TEXT NOT NULL,
  PRIMARY KEY (record_id, element)
);
CREATE INDEX record_element_el ON record_element (element, record_id);

CREATE TABLE record_acl (
  record_id TEXT NOT NULL REFERENCES record (id) ON DELETE CASCADE,
  principal TEXT NOT NULL,
  PRIMARY KEY (record_id, principal)
);
CREATE INDEX record_acl_principal ON record_acl (principal, record_id);

CREATE VIRTUAL TABLE record_fts USING fts5 (
  title, description, keywords, elements,
  content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2'
);

-- Access lists and elements as an FTS5 index, so the search intersects
-- posting lists instead of probing every record: principals and element
-- symbols are single tokens (':' and friends are token characters).
CREATE VIRTUAL TABLE record_filter USING fts5 (
  acl, elements,
  content = '', contentless_delete = 1, tokenize = "unicode61 tokenchars ':._@+-'"
);
INSERT INTO record_filter (rowid, acl, elements)
  SELECT r.rowid,
    COALESCE((SELECT group_concat(principal, ' ') FROM record_acl a WHERE a.record_id = r.id), ''),
    COALESCE((SELECT group_concat(element, ' ') FROM record_element e WHERE e.record_id = r.id), '')
  FROM record r;

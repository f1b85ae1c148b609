-- Rebuild the free-text index with prefix indexes (2-4 characters), so
-- "nano*" reads one posting list instead of every term it starts.
DROP TABLE record_fts;
CREATE VIRTUAL TABLE record_fts USING fts5 (
  title, description, keywords, elements,
  content = '', contentless_delete = 1, prefix = '2 3 4', tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO record_fts (rowid, title, description, keywords, elements)
  SELECT r.rowid, r.title, r.description,
    COALESCE((SELECT group_concat(json_extract(s.value, '$.subject'), ' ') FROM json_each(r.doc, '$.subjects') s), '') || ' ' ||
    COALESCE((SELECT group_concat(json_extract(c.value, '$.name'), ' ') FROM json_each(r.doc, '$.creators') c), ''),
    COALESCE((SELECT group_concat(element, ' ') FROM record_element e WHERE e.record_id = r.id), '')
  FROM record r;

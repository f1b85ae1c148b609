-- The month of acquisition, precomputed for the date histogram facet.
ALTER TABLE record ADD COLUMN month TEXT NOT NULL DEFAULT '';
UPDATE record SET month = strftime('%Y-%m', created_at / 1000000, 'unixepoch');
CREATE INDEX record_month ON record (month);

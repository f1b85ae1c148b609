// Package postgres is the catalog for deployments that outgrow one machine:
// records, elements and ACLs as arrays, and full text as a generated
// tsvector with GIN indexes, in PostgreSQL.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picoflow/picoflow/internal/buildinfo"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/record"
)

// Index is a catalog.Index on PostgreSQL.
type Index struct{ pool *pgxpool.Pool }

var _ catalog.Index = (*Index)(nil)

const schema = `
CREATE TABLE IF NOT EXISTS picoflow_record (
  id           text PRIMARY KEY,
  doc          jsonb NOT NULL,
  title        text NOT NULL,
  description  text NOT NULL DEFAULT '',
  keywords     text NOT NULL DEFAULT '',
  created_at   timestamptz NOT NULL,
  published_at timestamptz NOT NULL,
  instrument   text NOT NULL DEFAULT '',
  kind         text NOT NULL DEFAULT '',
  run_id       text NOT NULL DEFAULT '',
  sha256       text NOT NULL DEFAULT '',
  elements     text[] NOT NULL DEFAULT '{}',
  acl          text[] NOT NULL DEFAULT '{}',
  elements_text text NOT NULL DEFAULT '',
  month        text NOT NULL DEFAULT '',
  tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', title), 'A') ||
    setweight(to_tsvector('simple', description), 'B') ||
    setweight(to_tsvector('simple', keywords), 'C') ||
    setweight(to_tsvector('simple', elements_text), 'C')) STORED
);
-- Facet counts over all records, kept in step with every write: the
-- unfiltered view (an administrator's landing page) reads them instead of
-- scanning. facet: 0 month, 1 instrument, 2 kind, 3 element, 4 total.
CREATE TABLE IF NOT EXISTS picoflow_facet_count (
  facet smallint NOT NULL,
  value text NOT NULL,
  n     bigint NOT NULL,
  PRIMARY KEY (facet, value)
);
CREATE INDEX IF NOT EXISTS picoflow_record_month ON picoflow_record (month);
CREATE INDEX IF NOT EXISTS picoflow_record_tsv ON picoflow_record USING gin (tsv);
CREATE INDEX IF NOT EXISTS picoflow_record_acl ON picoflow_record USING gin (acl);
CREATE INDEX IF NOT EXISTS picoflow_record_elements ON picoflow_record USING gin (elements);
CREATE INDEX IF NOT EXISTS picoflow_record_created ON picoflow_record (created_at);
CREATE INDEX IF NOT EXISTS picoflow_record_kind ON picoflow_record (kind);
CREATE INDEX IF NOT EXISTS picoflow_record_instrument ON picoflow_record (instrument);
-- Record versions: every publication kept; picoflow_record holds the newest.
CREATE TABLE IF NOT EXISTS picoflow_record_version (
  record_id    text NOT NULL,
  version      int NOT NULL,
  run_id       text NOT NULL DEFAULT '',
  published_at timestamptz NOT NULL,
  doc          jsonb NOT NULL,
  PRIMARY KEY (record_id, version)
);
CREATE INDEX IF NOT EXISTS picoflow_record_version_run ON picoflow_record_version (record_id, run_id);
ALTER TABLE picoflow_record ADD COLUMN IF NOT EXISTS version int NOT NULL DEFAULT 1;
ALTER TABLE picoflow_record ADD COLUMN IF NOT EXISTS version_key text NOT NULL DEFAULT '';
-- Numbers a search compares: accelerating voltage (kV), magnification.
ALTER TABLE picoflow_record ADD COLUMN IF NOT EXISTS voltage_kv double precision;
ALTER TABLE picoflow_record ADD COLUMN IF NOT EXISTS magnification double precision;
UPDATE picoflow_record SET voltage_kv = (doc->'instrument'->'acceleratingVoltage'->>'value')::float8
  WHERE voltage_kv IS NULL AND doc->'instrument' ? 'acceleratingVoltage';
UPDATE picoflow_record SET magnification = (doc->'instrument'->'magnification'->>'value')::float8
  WHERE magnification IS NULL AND doc->'instrument' ? 'magnification';
CREATE INDEX IF NOT EXISTS picoflow_record_voltage ON picoflow_record (voltage_kv);
CREATE INDEX IF NOT EXISTS picoflow_record_magnification ON picoflow_record (magnification);
INSERT INTO picoflow_record_version (record_id, version, run_id, published_at, doc)
  SELECT id, version, run_id, published_at, doc FROM picoflow_record ON CONFLICT DO NOTHING;
`

// New creates the tables if needed.
func New(ctx context.Context, pool *pgxpool.Pool) (*Index, error) {
	if _, err := pool.Exec(ctx, schema); err != nil {
		return nil, fmt.Errorf("catalog postgres: migrate: %w", err)
	}
	return &Index{pool: pool}, nil
}

func params(e *catalog.Entry) ([]any, error) {
	doc, err := json.Marshal(e.Record)
	if err != nil {
		return nil, err
	}
	if e.Published.IsZero() {
		e.Published = time.Now()
	}
	els := slices.Sorted(slices.Values(e.Elements()))
	if els == nil {
		els = []string{}
	}
	c := catalog.CleanText
	return []any{e.ID, catalog.CleanJSON(doc), c(e.Title()), c(e.Description()), c(e.Keywords()), e.Created(), e.Published, c(e.Instrument()), c(e.Kind()),
		e.RunID, e.SHA256, els, e.VisibleTo, c(strings.Join(els, " ")), e.Created().UTC().Format("2006-01"), e.Version, buildinfo.SortKey(e.AnalysisVersion()),
		measure(e, catalog.FieldVoltage), measure(e, catalog.FieldMagnification)}, nil
}

func measure(e *catalog.Entry, field string) *float64 {
	if v, ok := e.Measure(field); ok {
		return &v
	}
	return nil
}

const upsert = `INSERT INTO picoflow_record (id, doc, title, description, keywords, created_at, published_at, instrument, kind, run_id, sha256, elements, acl, elements_text, month, version, version_key,
	  voltage_kv, magnification)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
	ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, title = excluded.title, description = excluded.description, keywords = excluded.keywords,
	  created_at = excluded.created_at, published_at = excluded.published_at, instrument = excluded.instrument, kind = excluded.kind,
	  run_id = excluded.run_id, sha256 = excluded.sha256, elements = excluded.elements, acl = excluded.acl, elements_text = excluded.elements_text, month = excluded.month,
	  version = excluded.version, version_key = excluded.version_key, voltage_kv = excluded.voltage_kv, magnification = excluded.magnification`

// version picks an entry's version (the one its run published before, else
// the next), records it, and says whether it is the newest.
func version(ctx context.Context, tx pgx.Tx, e *catalog.Entry, doc []byte) (newest bool, err error) {
	var top int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM picoflow_record_version WHERE record_id = $1`, e.ID).Scan(&top); err != nil {
		return false, err
	}
	e.Version = 0
	if e.RunID != "" && !e.NewVersion {
		err := tx.QueryRow(ctx, `SELECT max(version) FROM picoflow_record_version WHERE record_id = $1 AND run_id = $2 HAVING count(*) > 0`, e.ID, e.RunID).Scan(&e.Version)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return false, err
		}
	}
	if e.Version == 0 {
		e.Version = top + 1
		top = e.Version
	}
	_, err = tx.Exec(ctx, `INSERT INTO picoflow_record_version (record_id, version, run_id, published_at, doc) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (record_id, version) DO UPDATE SET doc = excluded.doc, published_at = excluded.published_at`, e.ID, e.Version, e.RunID, e.Published, doc)
	return e.Version == top, err
}

// Put inserts or replaces an entry.
func (x *Index) Put(ctx context.Context, e *catalog.Entry) error {
	return x.PutMany(ctx, []*catalog.Entry{e})
}

// uncount subtracts a stored record from the facet counts (before it is
// replaced or deleted); count adds the new one. Rows are touched in
// (facet, value) order, so concurrent writers cannot deadlock.
const (
	uncount = `UPDATE picoflow_facet_count c SET n = c.n - 1
	FROM (SELECT 0 AS f, month AS v FROM picoflow_record WHERE id = $1
	      UNION ALL SELECT 1, instrument FROM picoflow_record WHERE id = $1
	      UNION ALL SELECT 2, kind FROM picoflow_record WHERE id = $1
	      UNION ALL SELECT DISTINCT 3, unnest(elements) FROM picoflow_record WHERE id = $1
	      UNION ALL SELECT 4, '' FROM picoflow_record WHERE id = $1) d
	WHERE c.facet = d.f AND c.value = d.v`
	count = `INSERT INTO picoflow_facet_count (facet, value, n)
	SELECT f, v, 1 FROM (SELECT 0 AS f, $1::text AS v UNION ALL SELECT 1, $2 UNION ALL SELECT 2, $3
	      UNION ALL SELECT DISTINCT 3, unnest($4::text[]) UNION ALL SELECT 4, '') d ORDER BY f, v
	ON CONFLICT (facet, value) DO UPDATE SET n = picoflow_facet_count.n + 1`
)

// PutMany inserts entries, as new versions, in one transaction (bulk
// loads).
func (x *Index) PutMany(ctx context.Context, es []*catalog.Entry) error {
	tx, err := x.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("catalog put many: %w", err)
	}
	defer tx.Rollback(ctx)
	b := &pgx.Batch{}
	for _, e := range es {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("catalog put: %w", err)
		}
		if e.Published.IsZero() {
			e.Published = time.Now()
		}
		doc, err := json.Marshal(e.Record)
		if err != nil {
			return fmt.Errorf("catalog put %s: %w", e.ID, err)
		}
		newest, err := version(ctx, tx, e, catalog.CleanJSON(doc))
		if err != nil {
			return fmt.Errorf("catalog put %s: %w", e.ID, err)
		}
		if !newest {
			continue // an older version: the record stays the newest
		}
		p, err := params(e)
		if err != nil {
			return fmt.Errorf("catalog put %s: %w", e.ID, err)
		}
		b.Queue(uncount, e.ID)
		b.Queue(upsert, p...)
		b.Queue(count, p[14], p[7], p[8], p[11])
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("catalog put many: %w", err)
	}
	return tx.Commit(ctx)
}

// Delete removes an entry; a missing one is not an error.
func (x *Index) Delete(ctx context.Context, id string) error {
	tx, err := x.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("catalog delete %s: %w", id, err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, uncount, id); err != nil {
		return fmt.Errorf("catalog delete %s: %w", id, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM picoflow_record WHERE id = $1`, id); err != nil {
		return fmt.Errorf("catalog delete %s: %w", id, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM picoflow_record_version WHERE record_id = $1`, id); err != nil {
		return fmt.Errorf("catalog delete %s: %w", id, err)
	}
	return tx.Commit(ctx)
}

// Get returns an entry visible to principals.
func (x *Index) Get(ctx context.Context, id string, principals []string) (*catalog.Entry, error) {
	e := &catalog.Entry{ID: id, Record: &record.Record{}}
	var doc []byte
	err := x.pool.QueryRow(ctx, `SELECT doc, acl, run_id, sha256, published_at, version FROM picoflow_record WHERE id = $1`, id).
		Scan(&doc, &e.VisibleTo, &e.RunID, &e.SHA256, &e.Published, &e.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("catalog get %s: %w", id, catalog.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog get %s: %w", id, err)
	}
	slices.Sort(e.VisibleTo)
	if !catalog.CanSee(catalog.Query{Principals: principals}.Normalize().Principals, e.VisibleTo) {
		return nil, fmt.Errorf("catalog get %s: %w", id, catalog.ErrNotFound)
	}
	e.Published = e.Published.UTC()
	if err := json.Unmarshal(doc, e.Record); err != nil {
		return nil, fmt.Errorf("catalog get %s: %w", id, err)
	}
	return e, nil
}

// Versions returns every version of a record visible to principals,
// newest first.
func (x *Index) Versions(ctx context.Context, id string, principals []string) ([]*catalog.Entry, error) {
	cur, err := x.Get(ctx, id, principals)
	if err != nil {
		return nil, err
	}
	rows, err := x.pool.Query(ctx, `SELECT version, run_id, published_at, doc FROM picoflow_record_version WHERE record_id = $1 ORDER BY version DESC`, id)
	if err != nil {
		return nil, fmt.Errorf("catalog versions %s: %w", id, err)
	}
	defer rows.Close()
	var out []*catalog.Entry
	for rows.Next() {
		e := &catalog.Entry{ID: id, VisibleTo: cur.VisibleTo, SHA256: cur.SHA256, Record: &record.Record{}}
		var doc []byte
		if err := rows.Scan(&e.Version, &e.RunID, &e.Published, &doc); err != nil {
			return nil, fmt.Errorf("catalog versions %s: %w", id, err)
		}
		e.Published = e.Published.UTC()
		if err := json.Unmarshal(doc, e.Record); err != nil {
			return nil, fmt.Errorf("catalog versions %s: %w", id, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// tsQuery renders the search text's clauses as a tsquery: lexemes quoted,
// phrases with <->, prefixes with :*, the terms of a clause ORed, negated
// clauses with !, clauses ANDed. Empty text gives "".
func tsQuery(text string) string {
	var out []string
	for _, c := range catalog.ParseText(text) {
		var alts []string
		for _, t := range c.Any {
			lex := make([]string, len(t.Words))
			for i, w := range t.Words {
				lex[i] = "'" + strings.ReplaceAll(w, "'", "''") + "'"
			}
			if t.Prefix {
				lex[len(lex)-1] += ":*"
			}
			alts = append(alts, "("+strings.Join(lex, " <-> ")+")")
		}
		cl := "(" + strings.Join(alts, " | ") + ")"
		if c.Not {
			cl = "!" + cl
		}
		out = append(out, cl)
	}
	return strings.Join(out, " & ")
}

type where struct {
	conds []string
	args  []any
}

// add appends a condition; each ? becomes the next $n.
func (w *where) add(cond string, args ...any) string {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
	return cond
}

func and(conds []string) string {
	if len(conds) == 0 {
		return "true"
	}
	return "(" + strings.Join(conds, " AND ") + ")"
}

// Search runs a query in two statements: the page of hits, and the total
// with every facet from one scan of the records that pass the
// non-facet filters (text, access, elements). The facet filters (dates,
// instrument, kind) become flags of each row, so each facet counts the rows
// that pass all filters but its own.
func (x *Index) Search(ctx context.Context, q catalog.Query) (*catalog.Result, error) {
	q = q.Normalize()
	res := &catalog.Result{Facets: map[string][]catalog.FacetValue{}}
	w := &where{}
	if q.Text != "" {
		if ts := tsQuery(q.Text); ts != "" {
			w.add("tsv @@ to_tsquery('simple', ?)", ts)
		} else {
			return res, nil
		}
	}
	if !slices.Contains(q.Principals, catalog.Admin) {
		w.add("acl && ?", q.Principals)
	}
	if len(q.Elements) > 0 {
		w.add("elements @> ?", q.Elements)
	}
	baseConds := w.conds
	base := and(baseConds)
	w.conds = nil
	var dc, ic, kc []string
	if !q.From.IsZero() {
		dc = append(dc, w.add("created_at >= ?", q.From))
	}
	if !q.To.IsZero() {
		dc = append(dc, w.add("created_at < ?", q.To))
	}
	if len(q.Instruments) > 0 {
		ic = append(ic, w.add("instrument = ANY(?)", q.Instruments))
	}
	if len(q.Kinds) > 0 {
		kc = append(kc, w.add("kind = ANY(?)", q.Kinds))
	}
	if q.MadeBefore != "" {
		baseConds = append(baseConds, w.add("version_key <> '' AND version_key < ?", buildinfo.SortKey(q.MadeBefore)))
		base = and(baseConds)
	}
	for _, rg := range q.Ranges {
		if col, op, ok := catalog.RangeColumn(rg); ok {
			baseConds = append(baseConds, w.add(col+" "+op+" ?", rg.Value))
		} else {
			baseConds = append(baseConds, "false")
		}
		base = and(baseConds)
	}
	if base == "true" && len(w.conds) == 0 && q.Sort != catalog.SortRelevance {
		return x.browse(ctx, q, res)
	}
	d, i, k := and(dc), and(ic), and(kc)
	facetSQL := `WITH b AS MATERIALIZED (SELECT month, instrument, kind, elements, ` + d + ` AS d, ` + i + ` AS i, ` + k + ` AS k
		FROM picoflow_record WHERE ` + base + `)
	SELECT 0, month, count(*) FILTER (WHERE i AND k) FROM b GROUP BY month
	UNION ALL SELECT 1, instrument, count(*) FILTER (WHERE d AND k) FROM b GROUP BY instrument
	UNION ALL SELECT 2, kind, count(*) FILTER (WHERE d AND i) FROM b GROUP BY kind
	UNION ALL SELECT 3, el, count(*) FROM b, unnest(b.elements) AS el WHERE d AND i AND k GROUP BY el
	UNION ALL SELECT 4, '', count(*) FILTER (WHERE d AND i AND k) FROM b`
	facetArgs := slices.Clone(w.args)

	all := and(slices.Concat(baseConds, dc, ic, kc))
	order := "created_at DESC, id"
	pageArgs := slices.Clone(w.args)
	switch {
	case q.Sort == catalog.SortOldest:
		order = "created_at ASC, id"
	case q.Sort == catalog.SortRelevance && q.Text != "":
		pageArgs = append(pageArgs, tsQuery(q.Text))
		order = fmt.Sprintf("ts_rank(tsv, to_tsquery('simple', $%d)) DESC, created_at DESC", len(pageArgs))
	}
	pageArgs = append(pageArgs, q.Limit, q.Offset)
	pageSQL := fmt.Sprintf(`SELECT id, title, description, created_at, instrument, kind, elements FROM picoflow_record WHERE %s ORDER BY %s LIMIT $%d OFFSET $%d`,
		all, order, len(pageArgs)-1, len(pageArgs))

	b := &pgx.Batch{}
	b.Queue(facetSQL, facetArgs...)
	b.Queue(pageSQL, pageArgs...)
	return x.collect(ctx, b, res)
}

// collect reads a batch of (facet rows, page rows) into res.
func (x *Index) collect(ctx context.Context, b *pgx.Batch, res *catalog.Result) (*catalog.Result, error) {
	br := x.pool.SendBatch(ctx, b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("catalog search: %w", err)
	}
	fr, err := scanFacets(rows)
	if err != nil {
		return nil, fmt.Errorf("catalog search: %w", err)
	}
	addFacets(res, fr)
	if rows, err = br.Query(); err != nil {
		return nil, fmt.Errorf("catalog search: %w", err)
	}
	if res.Hits, err = scanHits(rows); err != nil {
		return nil, fmt.Errorf("catalog search: %w", err)
	}
	return res, nil
}

// facetRow is (facet number, value, count); facet 4 is the total.
type facetRow struct {
	f int
	v string
	n int64
}

func scanFacets(rows pgx.Rows) ([]facetRow, error) {
	defer rows.Close()
	var out []facetRow
	for rows.Next() {
		var r facetRow
		if err := rows.Scan(&r.f, &r.v, &r.n); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func scanHits(rows pgx.Rows) ([]catalog.Hit, error) {
	defer rows.Close()
	var out []catalog.Hit
	for rows.Next() {
		var h catalog.Hit
		if err := rows.Scan(&h.ID, &h.Title, &h.Description, &h.Created, &h.Instrument, &h.Kind, &h.Elements); err != nil {
			return nil, err
		}
		h.Created = h.Created.UTC()
		slices.Sort(h.Elements)
		out = append(out, h)
	}
	return out, rows.Err()
}

var facetNames = []string{catalog.FacetMonth, catalog.FacetInstrument, catalog.FacetKind, catalog.FacetElement}

// addFacets files rows under their facets: months in order, the others by
// count, at most 100 values each.
func addFacets(res *catalog.Result, rows []facetRow) {
	for _, r := range rows {
		if r.f == 4 {
			res.Total = int(r.n)
		} else if r.n > 0 && r.v != "" {
			res.Facets[facetNames[r.f]] = append(res.Facets[facetNames[r.f]], catalog.FacetValue{Value: r.v, Count: int(r.n)})
		}
	}
	for _, name := range facetNames {
		fv := res.Facets[name]
		if fv == nil {
			continue
		}
		if name == catalog.FacetMonth {
			slices.SortFunc(fv, func(a, b catalog.FacetValue) int { return strings.Compare(a.Value, b.Value) })
		} else {
			slices.SortFunc(fv, func(a, b catalog.FacetValue) int {
				if a.Count != b.Count {
					return b.Count - a.Count
				}
				return strings.Compare(a.Value, b.Value)
			})
		}
		res.Facets[name] = fv[:min(len(fv), 100)]
	}
}

// browse answers the unfiltered query (an administrator browsing
// everything) from the maintained facet counts.
func (x *Index) browse(ctx context.Context, q catalog.Query, res *catalog.Result) (*catalog.Result, error) {
	order := "created_at DESC, id"
	if q.Sort == catalog.SortOldest {
		order = "created_at ASC, id"
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT facet::int, value, n FROM picoflow_facet_count WHERE n > 0`)
	b.Queue(`SELECT id, title, description, created_at, instrument, kind, elements FROM picoflow_record ORDER BY `+order+` LIMIT $1 OFFSET $2`, q.Limit, q.Offset)
	return x.collect(ctx, b, res)
}

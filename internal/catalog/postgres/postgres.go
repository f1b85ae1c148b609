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
  tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', title), 'A') ||
    setweight(to_tsvector('simple', description), 'B') ||
    setweight(to_tsvector('simple', keywords), 'C') ||
    setweight(to_tsvector('simple', elements_text), 'C')) STORED
);
CREATE INDEX IF NOT EXISTS picoflow_record_tsv ON picoflow_record USING gin (tsv);
CREATE INDEX IF NOT EXISTS picoflow_record_acl ON picoflow_record USING gin (acl);
CREATE INDEX IF NOT EXISTS picoflow_record_elements ON picoflow_record USING gin (elements);
CREATE INDEX IF NOT EXISTS picoflow_record_created ON picoflow_record (created_at);
CREATE INDEX IF NOT EXISTS picoflow_record_kind ON picoflow_record (kind);
CREATE INDEX IF NOT EXISTS picoflow_record_instrument ON picoflow_record (instrument);
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
	els := e.Elements()
	if els == nil {
		els = []string{}
	}
	c := catalog.CleanText
	return []any{e.ID, catalog.CleanJSON(doc), c(e.Title()), c(e.Description()), c(e.Keywords()), e.Created(), e.Published, c(e.Instrument()), c(e.Kind()),
		e.RunID, e.SHA256, els, e.VisibleTo, c(strings.Join(els, " "))}, nil
}

const upsert = `INSERT INTO picoflow_record (id, doc, title, description, keywords, created_at, published_at, instrument, kind, run_id, sha256, elements, acl, elements_text)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
	ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, title = excluded.title, description = excluded.description, keywords = excluded.keywords,
	  created_at = excluded.created_at, published_at = excluded.published_at, instrument = excluded.instrument, kind = excluded.kind,
	  run_id = excluded.run_id, sha256 = excluded.sha256, elements = excluded.elements, acl = excluded.acl, elements_text = excluded.elements_text`

// Put inserts or replaces an entry.
func (x *Index) Put(ctx context.Context, e *catalog.Entry) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("catalog put: %w", err)
	}
	p, err := params(e)
	if err != nil {
		return fmt.Errorf("catalog put %s: %w", e.ID, err)
	}
	if _, err := x.pool.Exec(ctx, upsert, p...); err != nil {
		return fmt.Errorf("catalog put %s: %w", e.ID, err)
	}
	return nil
}

// PutMany inserts or replaces entries in one transaction (bulk loads).
func (x *Index) PutMany(ctx context.Context, es []*catalog.Entry) error {
	b := &pgx.Batch{}
	for _, e := range es {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("catalog put: %w", err)
		}
		p, err := params(e)
		if err != nil {
			return fmt.Errorf("catalog put %s: %w", e.ID, err)
		}
		b.Queue(upsert, p...)
	}
	tx, err := x.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("catalog put many: %w", err)
	}
	defer tx.Rollback(ctx)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("catalog put many: %w", err)
	}
	return tx.Commit(ctx)
}

// Delete removes an entry; a missing one is not an error.
func (x *Index) Delete(ctx context.Context, id string) error {
	if _, err := x.pool.Exec(ctx, `DELETE FROM picoflow_record WHERE id = $1`, id); err != nil {
		return fmt.Errorf("catalog delete %s: %w", id, err)
	}
	return nil
}

// Get returns an entry visible to principals.
func (x *Index) Get(ctx context.Context, id string, principals []string) (*catalog.Entry, error) {
	e := &catalog.Entry{ID: id, Record: &record.Record{}}
	var doc []byte
	err := x.pool.QueryRow(ctx, `SELECT doc, acl, run_id, sha256, published_at FROM picoflow_record WHERE id = $1`, id).
		Scan(&doc, &e.VisibleTo, &e.RunID, &e.SHA256, &e.Published)
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

// tsQuery renders parsed terms as a tsquery: lexemes quoted, phrases with
// <->, prefixes with :*, terms ANDed. Empty text gives "".
func tsQuery(text string) string {
	var out []string
	for _, t := range catalog.ParseText(text) {
		lex := make([]string, len(t.Words))
		for i, w := range t.Words {
			lex[i] = "'" + strings.ReplaceAll(w, "'", "''") + "'"
		}
		if t.Prefix {
			lex[len(lex)-1] += ":*"
		}
		out = append(out, "("+strings.Join(lex, " <-> ")+")")
	}
	return strings.Join(out, " & ")
}

type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return "true"
	}
	return strings.Join(w.conds, " AND ")
}

func filter(q catalog.Query, except string) *where {
	w := &where{}
	if q.Text != "" {
		if ts := tsQuery(q.Text); ts != "" {
			w.add("tsv @@ to_tsquery('simple', ?)", ts)
		} else {
			w.add("false")
		}
	}
	if !slices.Contains(q.Principals, catalog.Admin) {
		w.add("acl && ?", q.Principals)
	}
	if except != catalog.FacetMonth {
		if !q.From.IsZero() {
			w.add("created_at >= ?", q.From)
		}
		if !q.To.IsZero() {
			w.add("created_at < ?", q.To)
		}
	}
	if len(q.Instruments) > 0 && except != catalog.FacetInstrument {
		w.add("instrument = ANY(?)", q.Instruments)
	}
	if len(q.Kinds) > 0 && except != catalog.FacetKind {
		w.add("kind = ANY(?)", q.Kinds)
	}
	if len(q.Elements) > 0 {
		w.add("elements @> ?", q.Elements)
	}
	return w
}

// Search runs a query: hits, total and facets in one round trip each.
func (x *Index) Search(ctx context.Context, q catalog.Query) (*catalog.Result, error) {
	q = q.Normalize()
	res := &catalog.Result{Facets: map[string][]catalog.FacetValue{}}
	w := filter(q, "")
	order := "created_at DESC, id"
	sel := "id, title, description, created_at, instrument, kind, elements"
	args := slices.Clone(w.args)
	switch {
	case q.Sort == catalog.SortOldest:
		order = "created_at ASC, id"
	case q.Sort == catalog.SortRelevance && q.Text != "":
		args = append(args, tsQuery(q.Text))
		order = fmt.Sprintf("ts_rank(tsv, to_tsquery('simple', $%d)) DESC, created_at DESC", len(args))
	}
	args = append(args, q.Limit, q.Offset)
	b := &pgx.Batch{}
	b.Queue(`SELECT count(*) FROM picoflow_record WHERE `+w.sql(), w.args...)
	b.Queue(fmt.Sprintf(`SELECT %s FROM picoflow_record WHERE %s ORDER BY %s LIMIT $%d OFFSET $%d`, sel, w.sql(), order, len(args)-1, len(args)), args...)
	facets := []struct{ name, expr, from string }{
		{catalog.FacetMonth, `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM')`, `picoflow_record`},
		{catalog.FacetInstrument, `instrument`, `picoflow_record`},
		{catalog.FacetKind, `kind`, `picoflow_record`},
		{catalog.FacetElement, `el`, `picoflow_record, unnest(elements) AS el`},
	}
	for _, f := range facets {
		fw := filter(q, f.name)
		ord := "n DESC, v"
		if f.name == catalog.FacetMonth {
			ord = "v"
		}
		b.Queue(fmt.Sprintf(`SELECT %s AS v, count(*) AS n FROM %s WHERE %s GROUP BY v HAVING %s <> '' ORDER BY %s LIMIT 100`, f.expr, f.from, fw.sql(), f.expr, ord), fw.args...)
	}
	br := x.pool.SendBatch(ctx, b)
	defer br.Close()
	if err := br.QueryRow().Scan(&res.Total); err != nil {
		return nil, fmt.Errorf("catalog search: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("catalog search: %w", err)
	}
	for rows.Next() {
		var h catalog.Hit
		if err := rows.Scan(&h.ID, &h.Title, &h.Description, &h.Created, &h.Instrument, &h.Kind, &h.Elements); err != nil {
			rows.Close()
			return nil, fmt.Errorf("catalog search: %w", err)
		}
		h.Created = h.Created.UTC()
		slices.Sort(h.Elements)
		res.Hits = append(res.Hits, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog search: %w", err)
	}
	for _, f := range facets {
		rows, err := br.Query()
		if err != nil {
			return nil, fmt.Errorf("catalog search facet %s: %w", f.name, err)
		}
		for rows.Next() {
			var fv catalog.FacetValue
			var n int64
			if err := rows.Scan(&fv.Value, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("catalog search facet %s: %w", f.name, err)
			}
			fv.Count = int(n)
			res.Facets[f.name] = append(res.Facets[f.name], fv)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("catalog search facet %s: %w", f.name, err)
		}
	}
	return res, nil
}

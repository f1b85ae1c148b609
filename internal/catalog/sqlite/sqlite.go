// Package sqlite is the embedded catalog backend: records, elements and ACLs
// in SQLite tables beside the flows, free text in a contentless FTS5 index.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/record"
)

// Index is a catalog.Index over a migrated picoflow SQLite database.
type Index struct {
	write, read *sql.DB
}

var _ catalog.Index = (*Index)(nil)

// New returns an index writing through write and reading through read
// (they may be the same pool).
func New(write, read *sql.DB) *Index { return &Index{write: write, read: read} }

// Put inserts or replaces an entry.
func (x *Index) Put(ctx context.Context, e *catalog.Entry) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("catalog put: %w", err)
	}
	doc, err := json.Marshal(e.Record)
	if err != nil {
		return fmt.Errorf("catalog put %s: %w", e.ID, err)
	}
	if e.Published.IsZero() {
		e.Published = time.Now()
	}
	tx, err := x.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("catalog put %s: %w", e.ID, err)
	}
	defer tx.Rollback()
	if err := deleteTx(ctx, tx, e.ID); err != nil {
		return fmt.Errorf("catalog put %s: %w", e.ID, err)
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO record (id, doc, title, description, created_at, published_at, instrument, kind, run_id, sha256)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, string(catalog.CleanJSON(doc)), catalog.CleanText(e.Title()), catalog.CleanText(e.Description()), e.Created().UnixMicro(), e.Published.UnixMicro(),
		catalog.CleanText(e.Instrument()), catalog.CleanText(e.Kind()), e.RunID, e.SHA256)
	if err != nil {
		return fmt.Errorf("catalog put %s: %w", e.ID, err)
	}
	rowid, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("catalog put %s: %w", e.ID, err)
	}
	for _, el := range e.Elements() {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO record_element (record_id, element) VALUES (?, ?)`, e.ID, el); err != nil {
			return fmt.Errorf("catalog put %s: %w", e.ID, err)
		}
	}
	for _, p := range e.VisibleTo {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO record_acl (record_id, principal) VALUES (?, ?)`, e.ID, p); err != nil {
			return fmt.Errorf("catalog put %s: %w", e.ID, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO record_fts (rowid, title, description, keywords, elements) VALUES (?, ?, ?, ?, ?)`,
		rowid, catalog.CleanText(e.Title()), catalog.CleanText(e.Description()), catalog.CleanText(e.Keywords()), catalog.CleanText(strings.Join(e.Elements(), " "))); err != nil {
		return fmt.Errorf("catalog put %s: index text: %w", e.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("catalog put %s: %w", e.ID, err)
	}
	return nil
}

func deleteTx(ctx context.Context, tx *sql.Tx, id string) error {
	var rowid int64
	err := tx.QueryRowContext(ctx, `SELECT rowid FROM record WHERE id = ?`, id).Scan(&rowid)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM record_fts WHERE rowid = ?`, rowid); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `DELETE FROM record WHERE id = ?`, id)
	return err
}

// Delete removes an entry; deleting a missing entry is not an error.
func (x *Index) Delete(ctx context.Context, id string) error {
	tx, err := x.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("catalog delete %s: %w", id, err)
	}
	defer tx.Rollback()
	if err := deleteTx(ctx, tx, id); err != nil {
		return fmt.Errorf("catalog delete %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("catalog delete %s: %w", id, err)
	}
	return nil
}

// Get returns an entry visible to principals.
func (x *Index) Get(ctx context.Context, id string, principals []string) (*catalog.Entry, error) {
	var doc, runID, sha string
	var pub int64
	err := x.read.QueryRowContext(ctx, `SELECT doc, run_id, sha256, published_at FROM record WHERE id = ?`, id).Scan(&doc, &runID, &sha, &pub)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("catalog get %s: %w", id, catalog.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog get %s: %w", id, err)
	}
	acl, err := x.acl(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("catalog get %s: %w", id, err)
	}
	if !catalog.CanSee(catalog.Query{Principals: principals}.Normalize().Principals, acl) {
		return nil, fmt.Errorf("catalog get %s: %w", id, catalog.ErrNotFound)
	}
	e := &catalog.Entry{ID: id, VisibleTo: acl, RunID: runID, SHA256: sha, Published: time.UnixMicro(pub).UTC(), Record: &record.Record{}}
	if err := json.Unmarshal([]byte(doc), e.Record); err != nil {
		return nil, fmt.Errorf("catalog get %s: %w", id, err)
	}
	return e, nil
}

func (x *Index) acl(ctx context.Context, id string) ([]string, error) {
	rows, err := x.read.QueryContext(ctx, `SELECT principal FROM record_acl WHERE record_id = ? ORDER BY principal`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// filter builds the WHERE clause of a query, leaving out one facet's own
// filter (for disjunctive facet counts).
func filter(q catalog.Query, except string) (string, []any) {
	var where []string
	var args []any
	if q.Text != "" {
		where = append(where, `r.rowid IN (SELECT rowid FROM record_fts WHERE record_fts MATCH ?)`)
		args = append(args, ftsQuery(q.Text))
	}
	if !slices.Contains(q.Principals, catalog.Admin) {
		where = append(where, `EXISTS (SELECT 1 FROM record_acl a WHERE a.record_id = r.id AND a.principal IN (`+marks(len(q.Principals))+`))`)
		for _, p := range q.Principals {
			args = append(args, p)
		}
	}
	if except != catalog.FacetMonth {
		if !q.From.IsZero() {
			where = append(where, `r.created_at >= ?`)
			args = append(args, q.From.UnixMicro())
		}
		if !q.To.IsZero() {
			where = append(where, `r.created_at < ?`)
			args = append(args, q.To.UnixMicro())
		}
	}
	if len(q.Instruments) > 0 && except != catalog.FacetInstrument {
		where = append(where, `r.instrument IN (`+marks(len(q.Instruments))+`)`)
		for _, v := range q.Instruments {
			args = append(args, v)
		}
	}
	if len(q.Kinds) > 0 && except != catalog.FacetKind {
		where = append(where, `r.kind IN (`+marks(len(q.Kinds))+`)`)
		for _, v := range q.Kinds {
			args = append(args, v)
		}
	}
	for _, el := range q.Elements {
		where = append(where, `EXISTS (SELECT 1 FROM record_element e WHERE e.record_id = r.id AND e.element = ?)`)
		args = append(args, el)
	}
	if len(where) == 0 {
		return "1", nil
	}
	return strings.Join(where, " AND "), args
}

func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// ftsQuery renders parsed terms as an FTS5 query: each term a quoted
// string (phrases keep their words in order), ANDed.
func ftsQuery(text string) string {
	var out []string
	for _, t := range catalog.ParseText(text) {
		q := `"` + strings.Join(t.Words, " ") + `"`
		if t.Prefix {
			q += "*"
		}
		out = append(out, q)
	}
	if len(out) == 0 {
		return `""`
	}
	return strings.Join(out, " ")
}

// Search runs a query.
func (x *Index) Search(ctx context.Context, q catalog.Query) (*catalog.Result, error) {
	q = q.Normalize()
	where, args := filter(q, "")
	res := &catalog.Result{Facets: map[string][]catalog.FacetValue{}}
	if err := x.read.QueryRowContext(ctx, `SELECT count(*) FROM record r WHERE `+where, args...).Scan(&res.Total); err != nil {
		return nil, fmt.Errorf("catalog search: %w", err)
	}
	order := `r.created_at DESC, r.id`
	from := `record r`
	pageArgs := args
	switch {
	case q.Sort == catalog.SortOldest:
		order = `r.created_at ASC, r.id`
	case q.Sort == catalog.SortRelevance && q.Text != "":
		from = `record r JOIN (SELECT rowid AS fid, bm25(record_fts, 10.0, 3.0, 2.0, 2.0) AS score FROM record_fts WHERE record_fts MATCH ?) f ON f.fid = r.rowid`
		pageArgs = append([]any{ftsQuery(q.Text)}, args...)
		order = `f.score, r.created_at DESC`
	}
	rows, err := x.read.QueryContext(ctx, `SELECT r.id, r.title, r.description, r.created_at, r.instrument, r.kind,
		(SELECT group_concat(element, ' ') FROM (SELECT element FROM record_element e WHERE e.record_id = r.id ORDER BY element))
		FROM `+from+` WHERE `+where+` ORDER BY `+order+` LIMIT ? OFFSET ?`, append(pageArgs, q.Limit, q.Offset)...)
	if err != nil {
		return nil, fmt.Errorf("catalog search: %w", err)
	}
	for rows.Next() {
		var h catalog.Hit
		var created int64
		var els sql.NullString
		if err := rows.Scan(&h.ID, &h.Title, &h.Description, &created, &h.Instrument, &h.Kind, &els); err != nil {
			rows.Close()
			return nil, fmt.Errorf("catalog search: %w", err)
		}
		h.Created = time.UnixMicro(created).UTC()
		h.Elements = strings.Fields(els.String)
		res.Hits = append(res.Hits, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog search: %w", err)
	}
	facets := []struct{ name, expr, join string }{
		{catalog.FacetMonth, `strftime('%Y-%m', r.created_at / 1000000, 'unixepoch')`, ``},
		{catalog.FacetInstrument, `r.instrument`, ``},
		{catalog.FacetKind, `r.kind`, ``},
		{catalog.FacetElement, `fe.element`, ` JOIN record_element fe ON fe.record_id = r.id`},
	}
	for _, f := range facets {
		w, a := filter(q, f.name)
		order := `n DESC, v`
		if f.name == catalog.FacetMonth {
			order = `v`
		}
		rows, err := x.read.QueryContext(ctx, `SELECT `+f.expr+` AS v, count(*) AS n FROM record r`+f.join+` WHERE `+w+` AND v != '' GROUP BY v ORDER BY `+order+` LIMIT 100`, a...)
		if err != nil {
			return nil, fmt.Errorf("catalog search facet %s: %w", f.name, err)
		}
		for rows.Next() {
			var fv catalog.FacetValue
			if err := rows.Scan(&fv.Value, &fv.Count); err != nil {
				rows.Close()
				return nil, fmt.Errorf("catalog search facet %s: %w", f.name, err)
			}
			res.Facets[f.name] = append(res.Facets[f.name], fv)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("catalog search facet %s: %w", f.name, err)
		}
	}
	return res, nil
}

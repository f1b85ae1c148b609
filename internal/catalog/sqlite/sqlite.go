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
	"sync"
	"time"

	"github.com/picoflow/picoflow/internal/buildinfo"
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
	return x.PutMany(ctx, []*catalog.Entry{e})
}

var _ catalog.BatchPutter = (*Index)(nil)

// PutMany inserts or replaces entries in one transaction.
func (x *Index) PutMany(ctx context.Context, es []*catalog.Entry) error {
	tx, err := x.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("catalog put: %w", err)
	}
	defer tx.Rollback()
	for _, e := range es {
		if err := putTx(ctx, tx, e); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("catalog put: %w", err)
	}
	return nil
}

func putTx(ctx context.Context, tx *sql.Tx, e *catalog.Entry) error {
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
	clean := string(catalog.CleanJSON(doc))
	// The version: the one this run published before (a retried step),
	// else the next.
	var newest int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM record_version WHERE record_id = ?`, e.ID).Scan(&newest); err != nil {
		return fmt.Errorf("catalog put %s: %w", e.ID, err)
	}
	e.Version = 0
	if e.RunID != "" && !e.NewVersion {
		err := tx.QueryRowContext(ctx, `SELECT max(version) FROM record_version WHERE record_id = ? AND run_id = ? HAVING count(*) > 0`, e.ID, e.RunID).Scan(&e.Version)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("catalog put %s: %w", e.ID, err)
		}
	}
	if e.Version == 0 {
		e.Version = newest + 1
		newest = e.Version
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO record_version (record_id, version, run_id, published_at, doc) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (record_id, version) DO UPDATE SET doc = excluded.doc, published_at = excluded.published_at`,
		e.ID, e.Version, e.RunID, e.Published.UnixMicro(), clean); err != nil {
		return fmt.Errorf("catalog put %s: %w", e.ID, err)
	}
	if e.Version < newest {
		return nil // an older version: the record stays the newest
	}
	if err := deleteTx(ctx, tx, e.ID); err != nil {
		return fmt.Errorf("catalog put %s: %w", e.ID, err)
	}
	measure := func(f string) any {
		if v, ok := e.Measure(f); ok {
			return v
		}
		return nil
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO record (id, doc, title, description, created_at, published_at, instrument, kind, run_id, sha256, month, version, version_key,
		voltage_kv, magnification) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, clean, catalog.CleanText(e.Title()), catalog.CleanText(e.Description()), e.Created().UnixMicro(), e.Published.UnixMicro(),
		catalog.CleanText(e.Instrument()), catalog.CleanText(e.Kind()), e.RunID, e.SHA256, e.Created().Format("2006-01"), e.Version, buildinfo.SortKey(e.AnalysisVersion()),
		measure(catalog.FieldVoltage), measure(catalog.FieldMagnification))
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
	if _, err := tx.ExecContext(ctx, `INSERT INTO record_filter (rowid, acl, elements) VALUES (?, ?, ?)`,
		rowid, strings.Join(e.VisibleTo, " "), strings.Join(e.Elements(), " ")); err != nil {
		return fmt.Errorf("catalog put %s: index access list: %w", e.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO record_fts (rowid, title, description, keywords, elements) VALUES (?, ?, ?, ?, ?)`,
		rowid, catalog.CleanText(e.Title()), catalog.CleanText(e.Description()), catalog.CleanText(e.Keywords()), catalog.CleanText(strings.Join(e.Elements(), " "))); err != nil {
		return fmt.Errorf("catalog put %s: index text: %w", e.ID, err)
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
	if _, err := tx.ExecContext(ctx, `DELETE FROM record_filter WHERE rowid = ?`, rowid); err != nil {
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
	if _, err := tx.ExecContext(ctx, `DELETE FROM record_version WHERE record_id = ?`, id); err != nil {
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
	var version int
	err := x.read.QueryRowContext(ctx, `SELECT doc, run_id, sha256, published_at, version FROM record WHERE id = ?`, id).Scan(&doc, &runID, &sha, &pub, &version)
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
	e := &catalog.Entry{ID: id, VisibleTo: acl, RunID: runID, SHA256: sha, Published: time.UnixMicro(pub).UTC(), Record: &record.Record{}, Version: version}
	if err := json.Unmarshal([]byte(doc), e.Record); err != nil {
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
	rows, err := x.read.QueryContext(ctx, `SELECT version, run_id, published_at, doc FROM record_version WHERE record_id = ? ORDER BY version DESC`, id)
	if err != nil {
		return nil, fmt.Errorf("catalog versions %s: %w", id, err)
	}
	defer rows.Close()
	var out []*catalog.Entry
	for rows.Next() {
		e := &catalog.Entry{ID: id, VisibleTo: cur.VisibleTo, SHA256: cur.SHA256, Record: &record.Record{}}
		var pub int64
		var doc string
		if err := rows.Scan(&e.Version, &e.RunID, &pub, &doc); err != nil {
			return nil, fmt.Errorf("catalog versions %s: %w", id, err)
		}
		e.Published = time.UnixMicro(pub).UTC()
		if err := json.Unmarshal([]byte(doc), e.Record); err != nil {
			return nil, fmt.Errorf("catalog versions %s: %w", id, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
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
// matchSet evaluates the free-text, access and element filters once, as an
// intersection of FTS5 posting lists computed here, and returns the
// matching rowids (sorted), or all=true when none of them applies.
func (x *Index) matchSet(ctx context.Context, q catalog.Query) (ids []int64, all bool, err error) {
	var sets [][]int64
	if q.Text != "" {
		pos, neg := ftsQuery(q.Text, false), ftsQuery(q.Text, true)
		var s []int64
		var err error
		switch {
		case pos != "":
			s, err = x.rowids(ctx, `SELECT rowid FROM record_fts WHERE record_fts MATCH ? ORDER BY rowid`, pos)
		case neg != "":
			s, err = x.rowids(ctx, `SELECT rowid FROM record ORDER BY rowid`)
		}
		if err != nil {
			return nil, false, err
		}
		if neg != "" {
			// NOT: what the excluded terms match is taken away.
			n, err := x.rowids(ctx, `SELECT rowid FROM record_fts WHERE record_fts MATCH ? ORDER BY rowid`, neg)
			if err != nil {
				return nil, false, err
			}
			s = subtract(s, n)
		}
		sets = append(sets, s)
	}
	var match []string
	if !slices.Contains(q.Principals, catalog.Admin) {
		// FTS5 folds case, principals do not: when an access list holds a
		// case-variant of one of q's principals (group:ALPHA beside
		// group:alpha), the FTS5 answer is too wide and the exact one is
		// taken from record_acl instead.
		variant, err := x.caseVariants(ctx, q.Principals)
		if err != nil {
			return nil, false, err
		}
		if variant {
			s, err := x.rowids(ctx, `SELECT r.rowid FROM record r WHERE EXISTS (SELECT 1 FROM record_acl a WHERE a.record_id = r.id AND a.principal IN (?`+
				strings.Repeat(", ?", len(q.Principals)-1)+`)) ORDER BY r.rowid`, anys(q.Principals)...)
			if err != nil {
				return nil, false, err
			}
			sets = append(sets, s)
		} else {
			var ps []string
			for _, p := range q.Principals {
				ps = append(ps, quoteFTS(p))
			}
			match = append(match, "acl : ("+strings.Join(ps, " OR ")+")")
		}
	}
	for _, el := range q.Elements {
		match = append(match, "elements : "+quoteFTS(el))
	}
	if len(match) > 0 {
		s, err := x.rowids(ctx, `SELECT rowid FROM record_filter WHERE record_filter MATCH ? ORDER BY rowid`, strings.Join(match, " AND "))
		if err != nil {
			return nil, false, err
		}
		sets = append(sets, s)
	}
	if len(sets) == 0 {
		return nil, true, nil
	}
	ids = sets[0]
	for _, s := range sets[1:] {
		ids = intersect(ids, s)
	}
	return ids, false, nil
}

// caseVariants reports whether some access list holds a principal that
// equals one of principals but for case.
func (x *Index) caseVariants(ctx context.Context, principals []string) (bool, error) {
	if len(principals) == 0 {
		return false, nil
	}
	lower := make([]any, len(principals))
	for i, p := range principals {
		lower[i] = strings.ToLower(p)
	}
	rows, err := x.read.QueryContext(ctx, `SELECT DISTINCT principal FROM record_acl WHERE lower(principal) IN (?`+strings.Repeat(", ?", len(principals)-1)+`)`, lower...)
	if err != nil {
		return false, fmt.Errorf("search: access lists: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return false, err
		}
		if !slices.Contains(principals, p) {
			return true, nil
		}
	}
	return false, rows.Err()
}

func anys(v []string) []any {
	out := make([]any, len(v))
	for i, s := range v {
		out[i] = s
	}
	return out
}

func (x *Index) rowids(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := x.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func intersect(a, b []int64) []int64 {
	var out []int64
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

// filter builds the WHERE clause of a query over the matching rowids
// (idsJSON, a JSON array, or "" for all records), leaving out one facet's
// own filter (for disjunctive facet counts).
func filter(q catalog.Query, except, idsJSON string) (string, []any) {
	var where []string
	var args []any
	if idsJSON != "" {
		where = append(where, `r.rowid IN (SELECT value FROM json_each(?))`)
		args = append(args, idsJSON)
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
	if q.MadeBefore != "" {
		where = append(where, `r.version_key != '' AND r.version_key < ?`)
		args = append(args, buildinfo.SortKey(q.MadeBefore))
	}
	for _, rg := range q.Ranges {
		col, op, ok := catalog.RangeColumn(rg)
		if !ok {
			where = append(where, `0`)
			continue
		}
		where = append(where, `r.`+col+` `+op+` ?`)
		args = append(args, rg.Value)
	}
	if len(where) == 0 {
		return "1", nil
	}
	return strings.Join(where, " AND "), args
}

func quoteFTS(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// ftsQuery renders the search text's clauses as an FTS5 query: each term a
// quoted string (phrases keep their words in order, prefixes a *), the
// terms of a clause ORed, clauses ANDed. With negated, it renders the
// negated clauses, ORed (the rows to take away); "" when there are none.
func ftsQuery(text string, negated bool) string {
	var out []string
	for _, c := range catalog.ParseText(text) {
		if c.Not != negated {
			continue
		}
		var alts []string
		for _, t := range c.Any {
			q := `"` + strings.Join(t.Words, " ") + `"`
			if t.Prefix {
				q += "*"
			}
			alts = append(alts, q)
		}
		out = append(out, "("+strings.Join(alts, " OR ")+")")
	}
	if negated {
		return strings.Join(out, " OR ")
	}
	return strings.Join(out, " AND ")
}

// subtract returns the sorted a without the sorted b.
func subtract(a, b []int64) []int64 {
	var out []int64
	j := 0
	for _, x := range a {
		for j < len(b) && b[j] < x {
			j++
		}
		if j < len(b) && b[j] == x {
			continue
		}
		out = append(out, x)
	}
	return out
}

// Search runs a query.
func (x *Index) Search(ctx context.Context, q catalog.Query) (*catalog.Result, error) {
	q = q.Normalize()
	res := &catalog.Result{Facets: map[string][]catalog.FacetValue{}}
	ids, all, err := x.matchSet(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("catalog search: %w", err)
	}
	if !all && len(ids) == 0 {
		return res, nil
	}
	idsJSON := ""
	if !all {
		b, _ := json.Marshal(ids)
		idsJSON = string(b)
	}
	where, args := filter(q, "", idsJSON)
	if err := x.read.QueryRowContext(ctx, `SELECT count(*) FROM record r WHERE `+where, args...).Scan(&res.Total); err != nil {
		return nil, fmt.Errorf("catalog search: %w", err)
	}
	order := `r.created_at DESC, r.id`
	from := `record r`
	pageArgs := args
	switch {
	case q.Sort == catalog.SortOldest:
		order = `r.created_at ASC, r.id`
	case q.Sort == catalog.SortRelevance && ftsQuery(q.Text, false) != "":
		from = `record r JOIN (SELECT rowid AS fid, bm25(record_fts, 10.0, 3.0, 2.0, 2.0) AS score FROM record_fts WHERE record_fts MATCH ?) f ON f.fid = r.rowid`
		pageArgs = append([]any{ftsQuery(q.Text, false)}, args...)
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
		{catalog.FacetMonth, `r.month`, ``},
		{catalog.FacetInstrument, `r.instrument`, ``},
		{catalog.FacetKind, `r.kind`, ``},
		{catalog.FacetElement, `fe.element`, ` JOIN record_element fe ON fe.record_id = r.id`},
	}
	// The facets are independent queries: run them on the read pool's
	// connections at once (each is a scan of the matching records).
	var wg sync.WaitGroup
	errs := make([]error, len(facets))
	values := make([][]catalog.FacetValue, len(facets))
	for i, f := range facets {
		wg.Go(func() {
			w, a := filter(q, f.name, idsJSON)
			order := `n DESC, v`
			if f.name == catalog.FacetMonth {
				order = `v`
			}
			query := `SELECT ` + f.expr + ` AS v, count(*) AS n FROM record r` + f.join + ` WHERE ` + w + ` AND v != '' GROUP BY v ORDER BY ` + order + ` LIMIT 100`
			if f.name == catalog.FacetElement && w == "1" {
				// No filter: count straight from the element index.
				query = `SELECT element AS v, count(*) AS n FROM record_element GROUP BY v ORDER BY n DESC, v LIMIT 100`
			}
			rows, err := x.read.QueryContext(ctx, query, a...)
			if err != nil {
				errs[i] = err
				return
			}
			defer rows.Close()
			for rows.Next() {
				var fv catalog.FacetValue
				if err := rows.Scan(&fv.Value, &fv.Count); err != nil {
					errs[i] = err
					return
				}
				values[i] = append(values[i], fv)
			}
			errs[i] = rows.Err()
		})
	}
	wg.Wait()
	for i, f := range facets {
		if errs[i] != nil {
			return nil, fmt.Errorf("catalog search facet %s: %w", f.name, errs[i])
		}
		res.Facets[f.name] = values[i]
	}
	return res, nil
}

package flow

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

const runCols = `id, flow, sha256, file_name, size, agent, instrument, upload_id, stored_path, state, created_at, updated_at, finished_at, error, record_id, meta, rerun_key`

type scanner interface{ Scan(...any) error }

func scanRun(s scanner) (*Run, error) {
	var r Run
	var created, updated int64
	var finished sql.NullInt64
	var meta string
	if err := s.Scan(&r.ID, &r.Flow, &r.SHA256, &r.FileName, &r.Size, &r.Agent, &r.Instrument, &r.UploadID, &r.StoredPath,
		&r.State, &created, &updated, &finished, &r.Error, &r.RecordID, &meta, &r.RerunKey); err != nil {
		return nil, err
	}
	r.Created, r.Updated = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	r.Finished = tptr(finished)
	json.Unmarshal([]byte(meta), &r.Meta)
	return &r, nil
}

func tptr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMicro(v.Int64).UTC()
	return &t
}

// Run returns a run with its steps.
func (e *Engine) Run(ctx context.Context, id string) (*Run, error) {
	return getRun(ctx, e.db.Read, `SELECT `+runCols+` FROM run WHERE id = ?`, id)
}

// RunByContent returns the run of a flow for a file's SHA-256 that its
// upload started.
func (e *Engine) RunByContent(ctx context.Context, flowName, sha string) (*Run, error) {
	return e.RunByKey(ctx, flowName, sha, "")
}

// RunByKey returns the run of a flow for a file's SHA-256 and rerun key.
func (e *Engine) RunByKey(ctx context.Context, flowName, sha, key string) (*Run, error) {
	return getRun(ctx, e.db.Read, `SELECT `+runCols+` FROM run WHERE flow = ? AND sha256 = ? AND rerun_key = ?`, flowName, sha, key)
}

func getRun(ctx context.Context, db *sql.DB, q string, args ...any) (*Run, error) {
	r, err := scanRun(db.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("run %v: %w", args, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get run: %w", err)
	}
	rows, err := db.QueryContext(ctx, `SELECT idx, name, kind, state, attempts, ready_at, started_at, finished_at, active_us, error, output FROM step WHERE run_id = ? ORDER BY idx`, r.ID)
	if err != nil {
		return nil, fmt.Errorf("get run %s steps: %w", r.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s Step
		var ready, started, finished sql.NullInt64
		var activeUS int64
		var out string
		if err := rows.Scan(&s.Index, &s.Name, &s.Type, &s.State, &s.Attempts, &ready, &started, &finished, &activeUS, &s.Error, &out); err != nil {
			return nil, fmt.Errorf("get run %s steps: %w", r.ID, err)
		}
		s.Ready, s.Started, s.Finished = tptr(ready), tptr(started), tptr(finished)
		s.Active = time.Duration(activeUS) * time.Microsecond
		s.Output = []byte(out)
		r.Steps = append(r.Steps, s)
	}
	return r, rows.Err()
}

// ListQuery filters runs. Zero fields do not filter, except the caller:
// a query lists only the runs one of Principals may read (see
// run_reader), or every run when All is set (administrators, the server's
// own bookkeeping). A query with neither lists nothing.
type ListQuery struct {
	Flow, State, SHA256 string
	// Uploads keeps the runs uploads started (no re-analyses).
	Uploads bool
	Since   time.Time
	// Before pages back: runs created before this time.
	Before time.Time
	// Steps loads each listed run's steps too (in one query).
	Steps      bool
	Limit      int // default 100
	Principals []string
	All        bool
}

// readerFilter is the SQL condition (on table alias or name t) that limits
// runs to those one of principals may read, and its arguments. Principals
// compare exactly (byte for byte).
func readerFilter(t string, principals []string, all bool) (string, []any) {
	if all {
		return "", nil
	}
	if len(principals) == 0 {
		return "1 = 0", nil
	}
	args := make([]any, len(principals))
	for i, p := range principals {
		args[i] = p
	}
	return `EXISTS (SELECT 1 FROM run_reader rr WHERE rr.run_id = ` + t + `.id AND rr.principal IN (?` + strings.Repeat(", ?", len(principals)-1) + `))`, args
}

// CanRead reports whether one of principals may read run id.
func (e *Engine) CanRead(ctx context.Context, id string, principals []string) (bool, error) {
	if len(principals) == 0 {
		return false, nil
	}
	cond, args := readerFilter("run", principals, false)
	var n int
	if err := e.db.Read.QueryRowContext(ctx, `SELECT count(*) FROM run WHERE id = ? AND `+cond, append([]any{id}, args...)...).Scan(&n); err != nil {
		return false, fmt.Errorf("run %s: readers: %w", id, err)
	}
	return n > 0, nil
}

// ReadFilter returns which runs one of principals may read (every run when
// all is set), for filtering a stream of events: answers are cached per
// run (its readers are fixed when it starts), errors are not. The returned
// function is not safe for concurrent use.
func (e *Engine) ReadFilter(ctx context.Context, principals []string, all bool) func(runID string) bool {
	if all {
		return func(string) bool { return true }
	}
	seen := map[string]bool{}
	return func(runID string) bool {
		if v, ok := seen[runID]; ok {
			return v
		}
		ok, err := e.CanRead(ctx, runID, principals)
		if err != nil {
			return false // asked again on the next event
		}
		if len(seen) > 4096 {
			clear(seen)
		}
		seen[runID] = ok
		return ok
	}
}

// Readers returns the principals that may read run id (besides
// administrators).
func (e *Engine) Readers(ctx context.Context, id string) ([]string, error) {
	rows, err := e.db.Read.QueryContext(ctx, `SELECT principal FROM run_reader WHERE run_id = ? ORDER BY principal`, id)
	if err != nil {
		return nil, fmt.Errorf("run %s: readers: %w", id, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("run %s: readers: %w", id, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// AddReaders lets principals read run id as well.
func (e *Engine) AddReaders(ctx context.Context, id string, principals ...string) error {
	tx, err := e.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("run %s: add readers: %w", id, err)
	}
	defer tx.Rollback()
	if err := addReaders(ctx, tx, id, principals); err != nil {
		return err
	}
	return tx.Commit()
}

func addReaders(ctx context.Context, tx *sql.Tx, id string, principals []string) error {
	for _, p := range principals {
		if p == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO run_reader (run_id, principal) VALUES (?, ?) ON CONFLICT DO NOTHING`, id, p); err != nil {
			return fmt.Errorf("run %s: add reader: %w", id, err)
		}
	}
	return nil
}

// where is a list query's condition and arguments (without paging).
func (q ListQuery) where() (string, []any) {
	var where []string
	var args []any
	if q.Flow != "" {
		where, args = append(where, "flow = ?"), append(args, q.Flow)
	}
	if q.State != "" {
		where, args = append(where, "state = ?"), append(args, q.State)
	}
	if q.SHA256 != "" {
		where, args = append(where, "sha256 = ?"), append(args, q.SHA256)
	}
	if q.Uploads {
		where = append(where, "rerun_key = ''")
	}
	if !q.Since.IsZero() {
		where, args = append(where, "created_at >= ?"), append(args, q.Since.UnixMicro())
	}
	if cond, cargs := readerFilter("run", q.Principals, q.All); cond != "" {
		where, args = append(where, cond), append(args, cargs...)
	}
	if len(where) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

// Runs lists runs, newest first, without their steps unless q.Steps.
func (e *Engine) Runs(ctx context.Context, q ListQuery) ([]*Run, error) {
	w, args := q.where()
	if !q.Before.IsZero() {
		if w == "" {
			w = " WHERE created_at < ?"
		} else {
			w += " AND created_at < ?"
		}
		args = append(args, q.Before.UnixMicro())
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := e.db.Read.QueryContext(ctx, `SELECT `+runCols+` FROM run`+w+` ORDER BY created_at DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var out []*Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if q.Steps && len(out) > 0 {
		if err := e.loadSteps(ctx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// loadSteps fills the runs' steps with one query.
func (e *Engine) loadSteps(ctx context.Context, runs []*Run) error {
	byID := make(map[string]*Run, len(runs))
	args := make([]any, len(runs))
	for i, r := range runs {
		byID[r.ID], args[i] = r, r.ID
	}
	rows, err := e.db.Read.QueryContext(ctx, `SELECT run_id, idx, name, kind, state, attempts, ready_at, started_at, finished_at, active_us, error, output
		FROM step WHERE run_id IN (?`+strings.Repeat(", ?", len(runs)-1)+`) ORDER BY run_id, idx`, args...)
	if err != nil {
		return fmt.Errorf("list runs: steps: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s Step
		var runID, out string
		var ready, started, finished sql.NullInt64
		var activeUS int64
		if err := rows.Scan(&runID, &s.Index, &s.Name, &s.Type, &s.State, &s.Attempts, &ready, &started, &finished, &activeUS, &s.Error, &out); err != nil {
			return fmt.Errorf("list runs: steps: %w", err)
		}
		s.Ready, s.Started, s.Finished = tptr(ready), tptr(started), tptr(finished)
		s.Active = time.Duration(activeUS) * time.Microsecond
		s.Output = []byte(out)
		if r := byID[runID]; r != nil {
			r.Steps = append(r.Steps, s)
		}
	}
	return rows.Err()
}

// CountRuns counts the runs a query selects, by state (paging aside).
func (e *Engine) CountRuns(ctx context.Context, q ListQuery) (map[string]int, error) {
	w, args := q.where()
	rows, err := e.db.Read.QueryContext(ctx, `SELECT state, count(*) FROM run`+w+` GROUP BY state`, args...)
	if err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count runs: %w", err)
		}
		out[st] = n
	}
	return out, rows.Err()
}

// SetStoredPath records where a run's file is kept (the transfer step).
func (e *Engine) SetStoredPath(ctx context.Context, runID, path string) error {
	if _, err := e.db.Write.ExecContext(ctx, `UPDATE run SET stored_path = ? WHERE id = ?`, path, runID); err != nil {
		return fmt.Errorf("run %s: set stored path: %w", runID, err)
	}
	return nil
}

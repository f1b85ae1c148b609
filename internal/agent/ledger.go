package agent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/picoflow/picoflow/internal/sqlitewal" // pure-Go SQLite: the agent builds with CGO off
)

// File states in the ledger, in life-cycle order.
const (
	StateSeen       = "seen"       // found, being checked and hashed
	StateReady      = "ready"      // hashed; waiting to upload
	StateUploading  = "uploading"  // upload created; bytes being sent
	StateUploaded   = "uploaded"   // all bytes at the server; starting the flow
	StateStarted    = "started"    // the server's flow is running
	StateDone       = "done"       // the flow succeeded
	StateFailed     = "failed"     // the flow (or upload) failed for good
	StateDuplicate  = "duplicate"  // same content as an earlier file
	StateIncomplete = "incomplete" // never became a complete file
)

// States lists the file states in life-cycle order.
var States = []string{StateSeen, StateReady, StateUploading, StateUploaded, StateStarted, StateDone, StateFailed, StateDuplicate, StateIncomplete}

const schema = `
CREATE TABLE IF NOT EXISTS file (
  id          INTEGER PRIMARY KEY,
  path        TEXT NOT NULL,
  size        INTEGER NOT NULL,
  mtime       INTEGER NOT NULL,
  sha256      TEXT NOT NULL DEFAULT '',
  flow        TEXT NOT NULL,
  state       TEXT NOT NULL,
  upload_url  TEXT NOT NULL DEFAULT '',
  run_id      TEXT NOT NULL DEFAULT '',
  error       TEXT NOT NULL DEFAULT '',
  attempts    INTEGER NOT NULL DEFAULT 0,
  next_try    INTEGER NOT NULL DEFAULT 0,
  seen_at     INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  UNIQUE (path, size, mtime)
);
CREATE INDEX IF NOT EXISTS file_state ON file (state, next_try);
CREATE INDEX IF NOT EXISTS file_content ON file (sha256, flow);
-- Files the agent holds back before hashing them: not complete yet, or
-- still open for writing; shown by status with the reason.
CREATE TABLE IF NOT EXISTS waiting (
  path    TEXT PRIMARY KEY,
  size    INTEGER NOT NULL,
  reason  TEXT NOT NULL,
  since   INTEGER NOT NULL
);
-- Facts about the running agent for status: its upload rate cap, the rate
-- it sends at, the schedule window in force.
CREATE TABLE IF NOT EXISTS agent_state (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
`

// Entry is one file's row in the ledger.
type Entry struct {
	ID        int64     `json:"id"`
	Path      string    `json:"path"`
	Size      int64     `json:"size"`
	ModTime   time.Time `json:"mtime"`
	SHA256    string    `json:"sha256,omitempty"`
	Flow      string    `json:"flow"`
	State     string    `json:"state"`
	UploadURL string    `json:"upload_url,omitempty"`
	RunID     string    `json:"run_id,omitempty"`
	Error     string    `json:"error,omitempty"`
	Attempts  int       `json:"attempts"`
	Seen      time.Time `json:"seen"`
	Updated   time.Time `json:"updated"`
	// Alerts are the operator alerts of the file's analysis, one per line.
	Alerts string `json:"alerts,omitempty"`
}

// ledger is the agent's outbox: every file's life cycle, on disk, so a
// restarted agent resumes exactly where it stopped.
type ledger struct{ db *sql.DB }

func openLedger(ctx context.Context, path string) (*ledger, error) {
	db, err := sqlitewal.Open(ctx, path, "_pragma=synchronous(FULL)", "_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := migrateLedger(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	return &ledger{db: db}, nil
}

// migrateLedger creates or upgrades the schema in one write transaction, so
// an agent and `picoflow-agent status` opening the same ledger at once do
// not both add a column.
func migrateLedger(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: holds the write lock
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return err
	}
	// Ledgers from before operator alerts: add the column.
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('file') WHERE name = 'alerts'`).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE file ADD COLUMN alerts TEXT NOT NULL DEFAULT ''`); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (l *ledger) close() error { return l.db.Close() }

const entryCols = `id, path, size, mtime, sha256, flow, state, upload_url, run_id, error, attempts, seen_at, updated_at, alerts`

func scanEntry(s interface{ Scan(...any) error }) (*Entry, error) {
	var e Entry
	var mtime, seen, upd int64
	if err := s.Scan(&e.ID, &e.Path, &e.Size, &mtime, &e.SHA256, &e.Flow, &e.State, &e.UploadURL, &e.RunID, &e.Error, &e.Attempts, &seen, &upd, &e.Alerts); err != nil {
		return nil, err
	}
	e.ModTime, e.Seen, e.Updated = time.UnixMicro(mtime), time.UnixMicro(seen), time.UnixMicro(upd)
	return &e, nil
}

// known reports whether this exact version of a file is already recorded.
func (l *ledger) known(ctx context.Context, path string, size int64, mtime time.Time) (bool, error) {
	var n int
	err := l.db.QueryRowContext(ctx, `SELECT count(*) FROM file WHERE path = ? AND size = ? AND mtime = ?`, path, size, mtime.UnixMicro()).Scan(&n)
	return n > 0, err
}

// add records a hashed file. Content already recorded for the same flow
// (another path, or the same file touched) becomes a duplicate.
func (l *ledger) add(ctx context.Context, e *Entry) (*Entry, error) {
	now := time.Now().UnixMicro()
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	state, runID := e.State, ""
	if e.SHA256 != "" {
		var prevState string
		err := tx.QueryRowContext(ctx, `SELECT state, run_id FROM file WHERE sha256 = ? AND flow = ? AND state NOT IN (?, ?) ORDER BY id LIMIT 1`,
			e.SHA256, e.Flow, StateDuplicate, StateFailed).Scan(&prevState, &runID)
		if err == nil {
			state = StateDuplicate
		} else if !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO file (path, size, mtime, sha256, flow, state, run_id, error, seen_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path, size, mtime) DO NOTHING`,
		e.Path, e.Size, e.ModTime.UnixMicro(), e.SHA256, e.Flow, state, runID, e.Error, now, now)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	id, _ := res.LastInsertId()
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, nil
	}
	return l.get(ctx, id)
}

func (l *ledger) get(ctx context.Context, id int64) (*Entry, error) {
	return scanEntry(l.db.QueryRowContext(ctx, `SELECT `+entryCols+` FROM file WHERE id = ?`, id))
}

// update sets fields of a row; next is when to try again (zero: now).
func (l *ledger) update(ctx context.Context, id int64, state, uploadURL, runID, errMsg string, next time.Time) error {
	var nt int64
	if !next.IsZero() {
		nt = next.UnixMicro()
	}
	_, err := l.db.ExecContext(ctx, `UPDATE file SET state = ?, upload_url = ?, run_id = ?, error = ?, next_try = ?, updated_at = ?,
		attempts = CASE WHEN ? != '' THEN attempts + 1 ELSE attempts END WHERE id = ?`,
		state, uploadURL, runID, errMsg, nt, time.Now().UnixMicro(), errMsg, id)
	return err
}

// due returns rows in the given states whose next try has come.
func (l *ledger) due(ctx context.Context, states []string, limit int) ([]*Entry, error) {
	q := `SELECT ` + entryCols + ` FROM file WHERE state IN (` + marks(len(states)) + `) AND next_try <= ? ORDER BY id LIMIT ?`
	args := []any{}
	for _, s := range states {
		args = append(args, s)
	}
	return l.entries(ctx, q, append(args, time.Now().UnixMicro(), limit)...)
}

func (l *ledger) entries(ctx context.Context, q string, args ...any) ([]*Entry, error) {
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// failedWithRuns returns the newest failed rows that have a run at the
// server.
func (l *ledger) failedWithRuns(ctx context.Context, limit int) ([]*Entry, error) {
	return l.entries(ctx, `SELECT `+entryCols+` FROM file WHERE state = ? AND run_id != '' ORDER BY updated_at DESC LIMIT ?`, StateFailed, limit)
}

// shaOf returns the SHA-256 the agent computed for a file it has seen at
// path ("" when it has none).
func (l *ledger) shaOf(ctx context.Context, path string) (string, error) {
	var sum string
	err := l.db.QueryRowContext(ctx, `SELECT sha256 FROM file WHERE path = ? AND sha256 != '' ORDER BY id DESC LIMIT 1`, path).Scan(&sum)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return sum, err
}

// list returns the newest rows first.
func (l *ledger) list(ctx context.Context, limit int) ([]*Entry, error) {
	return l.entries(ctx, `SELECT `+entryCols+` FROM file ORDER BY id DESC LIMIT ?`, limit)
}

func marks(n int) string {
	s := make([]byte, 0, 2*n)
	for i := range n {
		if i > 0 {
			s = append(s, ',')
		}
		s = append(s, '?')
	}
	return string(s)
}

// ReadLedger lists the newest entries of a ledger file (for status tools;
// safe while the agent runs).
func ReadLedger(ctx context.Context, path string, limit int) ([]*Entry, error) {
	l, err := openLedger(ctx, path)
	if err != nil {
		return nil, err
	}
	defer l.close()
	return l.list(ctx, limit)
}

// Waiting is a file the agent holds back before sending it.
type Waiting struct {
	Path   string    `json:"path"`
	Size   int64     `json:"size"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

func (l *ledger) setWaiting(ctx context.Context, w Waiting) error {
	_, err := l.db.ExecContext(ctx, `INSERT INTO waiting (path, size, reason, since) VALUES (?, ?, ?, ?)
		ON CONFLICT (path) DO UPDATE SET size = excluded.size, reason = excluded.reason`, w.Path, w.Size, w.Reason, w.Since.UnixMicro())
	return err
}

func (l *ledger) clearWaiting(ctx context.Context, path string) error {
	_, err := l.db.ExecContext(ctx, `DELETE FROM waiting WHERE path = ?`, path)
	return err
}

// ReadWaiting returns the files an agent holds back, oldest first.
func ReadWaiting(ctx context.Context, path string) ([]Waiting, error) {
	l, err := openLedger(ctx, path)
	if err != nil {
		return nil, err
	}
	defer l.close()
	rows, err := l.db.QueryContext(ctx, `SELECT path, size, reason, since FROM waiting ORDER BY since`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Waiting
	for rows.Next() {
		var w Waiting
		var since int64
		if err := rows.Scan(&w.Path, &w.Size, &w.Reason, &since); err != nil {
			return nil, err
		}
		w.Since = time.UnixMicro(since)
		out = append(out, w)
	}
	return out, rows.Err()
}

// LedgerCounts returns how many files of a ledger are in each state.
func LedgerCounts(ctx context.Context, path string) (map[string]int, error) {
	l, err := openLedger(ctx, path)
	if err != nil {
		return nil, err
	}
	defer l.close()
	rows, err := l.db.QueryContext(ctx, `SELECT state, count(*) FROM file GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("ledger counts: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("ledger counts: %w", err)
		}
		out[st] = n
	}
	return out, rows.Err()
}

func (l *ledger) setAlerts(ctx context.Context, id int64, alerts string) error {
	_, err := l.db.ExecContext(ctx, `UPDATE file SET alerts = ? WHERE id = ?`, alerts, id)
	return err
}

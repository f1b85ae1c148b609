// Package sqlitewal opens SQLite databases (modernc.org/sqlite, pure Go) in
// WAL mode so that several processes may create and open the same new
// database at the same moment.
//
// Why not `_pragma=journal_mode(WAL)` in the DSN: switching a new database
// to WAL reads the header (a shared lock) and then upgrades to an exclusive
// lock. When another process holds or waits for a write lock at that
// moment, SQLite answers SQLITE_BUSY at once, without calling the busy
// handler, because waiting could deadlock (two readers each waiting for the
// other to upgrade). The SQLite documentation's remedy is to end the
// statement and try again, which is what Open does, within the busy timeout.
package sqlitewal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// BusyTimeout is how long a statement waits for another process's lock.
const BusyTimeout = 10 * time.Second

// DSN is the data source name for the database file at path (made absolute)
// with the busy timeout first and the given extra query parameters
// (_pragma=..., _txlock=..., mode=...). It never sets journal_mode: that is
// done once, by Open.
func DSN(path string, params ...string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	q := append([]string{fmt.Sprintf("_pragma=busy_timeout(%d)", BusyTimeout.Milliseconds())}, params...)
	return "file:" + (&url.URL{Path: filepath.ToSlash(abs)}).EscapedPath() + "?" + strings.Join(q, "&"), nil
}

// Open opens the database at path with the given query parameters and makes
// sure it is in WAL mode, retrying while another process holds a lock that
// SQLite will not wait for. The caller sets the pool size.
func Open(ctx context.Context, path string, params ...string) (*sql.DB, error) {
	dsn, err := DSN(path, params...)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	if err := EnableWAL(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// EnableWAL switches db to WAL mode (persistent in the file), retrying on
// SQLITE_BUSY until BusyTimeout has passed.
func EnableWAL(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(BusyTimeout)
	wait := time.Millisecond
	for {
		var mode string
		err := db.QueryRowContext(ctx, `PRAGMA journal_mode=WAL`).Scan(&mode)
		if err == nil {
			if !strings.EqualFold(mode, "wal") {
				return fmt.Errorf("sqlite: journal mode is %q, not wal", mode)
			}
			return nil
		}
		if !IsBusy(err) || time.Now().After(deadline) {
			return fmt.Errorf("sqlite: enable wal: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// IsBusy reports whether err is SQLite's SQLITE_BUSY or SQLITE_LOCKED (any
// extended code).
func IsBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code() & 0xff
	return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
}

// Package store opens the server's SQLite database: one writer connection
// shared by River and the application tables (SQLite allows one writer at a
// time, and River's SQLite driver needs a single connection to avoid
// SQLITE_BUSY), plus a pool of read-only connections for searches and the
// portal, which WAL mode lets run beside the writer. It owns the schema
// migrations of River and of picoflow's own tables.
package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"github.com/picoflow/picoflow/internal/sqlitewal"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// DB is an open server database.
type DB struct {
	// Postgres is set when the database is PostgreSQL (several servers may
	// share it); otherwise it is the embedded SQLite file.
	Postgres bool
	// Write is the single read-write connection (River, flows, catalog writes).
	Write *sql.DB
	// Read is a pool of read-only connections.
	Read *sql.DB
	// Path is the database file (or URL).
	Path string
	// Pgx holds direct PostgreSQL connections for what needs a session of
	// its own: LISTEN (River's pgx listener, so a step enqueued by one
	// server wakes the others at once; new compute tasks) and the advisory
	// locks of uploads being written. Nil for SQLite.
	Pgx *pgxpool.Pool
}

//go:embed migrations/*.sql
var migrations embed.FS

//go:embed migrations_pg/*.sql
var migrationsPG embed.FS

// OpenPostgres connects to PostgreSQL (postgres://...) and migrates River
// and picoflow's tables. Application statements keep their ? placeholders
// (see rebind.go).
func OpenPostgres(ctx context.Context, url string) (*DB, error) {
	w, err := sql.Open("picoflow-pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	w.SetMaxOpenConns(20)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	cfg.MinConns, cfg.MaxConns = 0, 32 // listeners and uploads being written
	pgxPool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store: listener pool: %w", err)
	}
	db := &DB{Write: w, Read: w, Path: url, Postgres: true, Pgx: pgxPool}
	if err := db.migratePostgres(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// migratePostgres migrates under an advisory lock, so that servers started
// together on one database do not apply the same migration twice.
func (db *DB) migratePostgres(ctx context.Context) error {
	conn, err := db.Write.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	const key = 0x7069636f666c6f77 // "picoflow"
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(?)`, key); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(?)`, key)
	m, err := rivermigrate.New(riverdatabasesql.New(db.Write), nil)
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	return db.apply(ctx, migrationsPG, "migrations_pg/*.sql", `CREATE TABLE IF NOT EXISTS picoflow_migration (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`)
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	w, err := sqlitewal.Open(ctx, abs, "_pragma=synchronous(NORMAL)", "_pragma=foreign_keys(ON)", "_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", abs, err)
	}
	db := &DB{Write: w, Path: abs}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	rdsn, err := sqlitewal.DSN(abs, "mode=ro", "_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s read-only: %w", abs, err)
	}
	r, err := sql.Open("sqlite", rdsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s read-only: %w", abs, err)
	}
	r.SetMaxOpenConns(4)
	db.Read = r
	return db, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	var err error
	if db.Read != nil && db.Read != db.Write {
		err = db.Read.Close()
	}
	if e := db.Write.Close(); e != nil {
		err = e
	}
	if db.Pgx != nil {
		db.Pgx.Close()
	}
	return err
}

// migrate applies River's migrations and then picoflow's, each once.
func (db *DB) migrate(ctx context.Context) error {
	m, err := rivermigrate.New(riversqlite.New(db.Write), nil)
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	return db.apply(ctx, migrations, "migrations/*.sql", `CREATE TABLE IF NOT EXISTS picoflow_migration (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))`)
}

// apply runs each migration file of fsys once, in name order.
func (db *DB) apply(ctx context.Context, fsys embed.FS, pattern, table string) error {
	if _, err := db.Write.ExecContext(ctx, table); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(fsys, pattern)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(names)
	for _, n := range names {
		name := strings.TrimSuffix(filepath.Base(n), ".sql")
		var done int
		if err := db.Write.QueryRowContext(ctx, `SELECT count(*) FROM picoflow_migration WHERE name = ?`, name).Scan(&done); err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
		if done > 0 {
			continue
		}
		body, err := fsys.ReadFile(n)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
		// A migration that rebuilds a table other tables reference runs
		// with foreign keys off (SQLite's procedure for schema changes:
		// dropping the old table would otherwise cascade), checked after.
		// The writer is one connection, so the pragma applies to the
		// transaction below.
		fkOff := strings.HasPrefix(string(body), "-- picoflow:foreign-keys-off")
		if fkOff {
			if _, err := db.Write.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
				return fmt.Errorf("migrate %s: %w", name, err)
			}
		}
		tx, err := db.Write.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO picoflow_migration (name) VALUES (?)`, name); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate %s: %w", name, err)
		}
		if fkOff {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_foreign_key_check`).Scan(&n); err != nil || n > 0 {
				tx.Rollback()
				return fmt.Errorf("migrate %s: foreign key check: %d violations %v", name, n, err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
		if fkOff {
			if _, err := db.Write.ExecContext(ctx, `PRAGMA foreign_keys = ON`); err != nil {
				return fmt.Errorf("migrate %s: %w", name, err)
			}
		}
	}
	return nil
}

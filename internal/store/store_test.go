package store

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"
)

func TestOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	for range 2 {
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.Read.QueryRowContext(ctx, `SELECT count(*) FROM picoflow_migration`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		files, _ := fs.Glob(migrations, "migrations/*.sql")
		if n != len(files) || n < 8 {
			t.Fatalf("%d migrations recorded, want one per file (%d)", n, len(files))
		}
		if _, err := db.Read.ExecContext(ctx, `INSERT INTO token (hash, name, principal, created_at) VALUES ('h','n','p',1)`); err == nil {
			t.Fatal("the read pool accepted a write")
		}
		if _, err := db.Write.ExecContext(ctx, `INSERT INTO record_fts (rowid, title) VALUES (1, 'graphene')`); err != nil {
			t.Fatalf("fts5: %v", err)
		}
		db.Close()
	}
}

// TestRebuildKeepsReferences: the migration that rebuilds the run table
// (011) keeps every run's steps and readers, and leaves foreign keys on.
// It is replayed here on a database holding a run, as an upgrade would
// meet it.
func TestRebuildKeepsReferences(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "p.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO run (id, flow, sha256, file_name, state, created_at, updated_at) VALUES ('r1', 'f', 'abc', 'x.emd', 'succeeded', 1, 1)`,
		`INSERT INTO step (run_id, idx, name, kind, state) VALUES ('r1', 0, 'transfer', 'transfer', 'succeeded')`,
		`INSERT INTO run_reader (run_id, principal) VALUES ('r1', 'user:alice')`,
		`DELETE FROM picoflow_migration WHERE name = '011_run_rerun_key'`,
	} {
		if _, err := db.Write.ExecContext(ctx, q); err != nil {
			t.Fatal(q, err)
		}
	}
	db.Close()
	if db, err = Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var steps, readers, fk int
	db.Write.QueryRowContext(ctx, `SELECT count(*) FROM step WHERE run_id = 'r1'`).Scan(&steps)
	db.Write.QueryRowContext(ctx, `SELECT count(*) FROM run_reader WHERE run_id = 'r1'`).Scan(&readers)
	db.Write.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk)
	if steps != 1 || readers != 1 || fk != 1 {
		t.Fatalf("after the rebuild: %d steps, %d readers, foreign keys %d", steps, readers, fk)
	}
	// The same content may now run again under a rerun key, once per key.
	for i, key := range []string{"k1", "k1"} {
		_, err := db.Write.ExecContext(ctx, `INSERT INTO run (id, flow, sha256, file_name, state, created_at, updated_at, rerun_key) VALUES (?, 'f', 'abc', 'x.emd', 'queued', 2, 2, ?)`,
			"r2"+string(rune('a'+i)), key)
		if (err == nil) != (i == 0) {
			t.Fatalf("rerun %d with key %s: %v", i, key, err)
		}
	}
	// Deleting a run still removes its steps (the reference survived).
	if _, err := db.Write.ExecContext(ctx, `DELETE FROM run WHERE id = 'r1'`); err != nil {
		t.Fatal(err)
	}
	db.Write.QueryRowContext(ctx, `SELECT count(*) FROM step WHERE run_id = 'r1'`).Scan(&steps)
	if steps != 0 {
		t.Errorf("steps of a deleted run remain: the step table lost its reference to run")
	}
}

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

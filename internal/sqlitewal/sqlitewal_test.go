package sqlitewal

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
)

// TestOpenConcurrently: eight connections create the same new database at
// once, each switching it to WAL and creating the schema in an immediate
// transaction. Before Open retried the WAL switch, about one round in three
// failed with SQLITE_BUSY.
func TestOpenConcurrently(t *testing.T) {
	ctx := context.Background()
	for round := range 40 {
		path := filepath.Join(t.TempDir(), "x.db")
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				db, err := Open(ctx, path, "_txlock=immediate")
				if err != nil {
					errs <- err
					return
				}
				defer db.Close()
				db.SetMaxOpenConns(1)
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					errs <- err
					return
				}
				defer tx.Rollback()
				if _, err := tx.Exec(`CREATE TABLE IF NOT EXISTS t (x INTEGER)`); err != nil {
					errs <- err
					return
				}
				if _, err := tx.Exec(`INSERT INTO t VALUES (1)`); err != nil {
					errs <- err
					return
				}
				errs <- tx.Commit()
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		db, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		var mode string
		var n int
		if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Fatalf("journal mode %q, %v", mode, err)
		}
		if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 8 {
			t.Fatalf("rows %d, %v (want 8)", n, err)
		}
		db.Close()
	}
}

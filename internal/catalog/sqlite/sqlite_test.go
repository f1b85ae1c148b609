package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/catalog/catalogtest"
	"github.com/picoflow/picoflow/internal/catalog/sqlite"
	"github.com/picoflow/picoflow/internal/store"
)

func TestSuite(t *testing.T) {
	catalogtest.RunSuite(t, func(t *testing.T) catalog.Index {
		db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return sqlite.New(db.Write, db.Read)
	})
}

// BenchmarkSearch100k: go test -run '^$' -bench Search100k ./internal/catalog/...
func BenchmarkSearch100k(b *testing.B) {
	db, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "p.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	x := sqlite.New(db.Write, db.Read)
	catalogtest.Populate(b, x, 100_000)
	b.ResetTimer()
	catalogtest.BenchSearch(b, x)
}

package postgres_test

import (
	"context"
	"testing"

	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/catalog/catalogtest"
	"github.com/picoflow/picoflow/internal/catalog/postgres"
	"github.com/picoflow/picoflow/internal/pgtest"
)

func TestSuite(t *testing.T) {
	catalogtest.RunSuite(t, func(t *testing.T) catalog.Index {
		x, err := postgres.New(context.Background(), pgtest.Pool(t))
		if err != nil {
			t.Fatal(err)
		}
		return x
	})
}

// BenchmarkSearch100k: go test -run '^$' -bench Search100k ./internal/catalog/...
func BenchmarkSearch100k(b *testing.B) {
	pool := pgtest.Pool(b)
	x, err := postgres.New(context.Background(), pool)
	if err != nil {
		b.Fatal(err)
	}
	catalogtest.Populate(b, x, 100_000)
	pool.Exec(context.Background(), "ANALYZE picoflow_record")
	b.ResetTimer()
	catalogtest.BenchSearch(b, x)
}

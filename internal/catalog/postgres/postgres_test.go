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

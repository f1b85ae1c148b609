package compute_test

import (
	"context"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/compute"
	"github.com/picoflow/picoflow/internal/pgtest"
	"github.com/picoflow/picoflow/internal/store"
)

// pgQueue opens the PostgreSQL database at url as one server does and
// returns its task queue.
func pgQueue(t *testing.T, url string) (*store.DB, *compute.Queue) {
	t.Helper()
	db, err := store.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	q := compute.NewQueue(db.Write, db.Read)
	q.Postgres = true
	return db, q
}

// TestTaskWakesOtherServer: an endpoint long-polling one server gets a
// task another server (same PostgreSQL database) submits at once, not at
// its next look at the table.
func TestTaskWakesOtherServer(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	_, a := pgQueue(t, url)
	dbB, b := pgQueue(t, url)
	a.Lease, b.Lease = time.Hour, time.Hour // the fallback look is then every 5 s
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.ListenPostgres(ctx, dbB.Pgx)
	time.Sleep(300 * time.Millisecond) // LISTEN registered
	for i := range 3 {
		got := make(chan *compute.Task, 1)
		go func() {
			tk, err := b.Claim(ctx, "ep", 20*time.Second)
			if err != nil {
				t.Error(err)
			}
			got <- tk
		}()
		time.Sleep(200 * time.Millisecond) // the claim is waiting
		t0 := time.Now()
		sub, err := a.Submit(ctx, "run", i, "analyze", compute.Input{FileName: "x.emd"})
		if err != nil {
			t.Fatal(err)
		}
		tk := <-got
		if tk == nil || tk.ID != sub.ID {
			t.Fatalf("claimed %+v, want task %s", tk, sub.ID)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Fatalf("the waiting claim on the other server took %v", d)
		} else {
			t.Logf("task %d handed to the other server's claim in %v", i, d)
		}
	}
}

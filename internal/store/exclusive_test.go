package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/pgtest"
	"github.com/picoflow/picoflow/internal/store"
)

// TestExclusive: of two servers on one PostgreSQL database, one runs the
// exclusive work at a time; it passes to the other when the holder stops,
// and when the holder's session is cut.
func TestExclusive(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	var active, most atomic.Int32
	var runs [2]atomic.Int32
	open := func() *store.DB {
		db, err := store.OpenPostgres(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	dbs := [2]*store.DB{open(), open()}
	ctxs := [2]context.Context{}
	cancels := [2]context.CancelFunc{}
	var wg sync.WaitGroup
	for i, db := range dbs {
		ctxs[i], cancels[i] = context.WithCancel(context.Background())
		wg.Go(func() {
			db.Exclusive(ctxs[i], "scaler", 100*time.Millisecond, func(ctx context.Context) {
				runs[i].Add(1)
				n := active.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				<-ctx.Done()
				active.Add(-1)
			})
		})
	}
	defer func() {
		cancels[0]()
		cancels[1]()
		wg.Wait()
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (runs %d, %d; active %d)", what, runs[0].Load(), runs[1].Load(), active.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("one holder", func() bool { return active.Load() == 1 })
	time.Sleep(500 * time.Millisecond) // the other keeps trying meanwhile
	holder := 0
	if runs[1].Load() == 1 {
		holder = 1
	}
	other := 1 - holder
	if runs[other].Load() != 0 {
		t.Fatalf("both ran: %d, %d", runs[0].Load(), runs[1].Load())
	}
	// The holder's session is cut (as when its server dies): the other
	// takes over.
	var pid int
	if err := dbs[other].Write.QueryRow(`SELECT l.pid FROM pg_locks l, (SELECT `+store.ExclusiveKey+` AS k) x
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		AND l.classid = ((x.k >> 32) & 4294967295)::oid AND l.objid = (x.k & 4294967295)::oid`, "scaler").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := dbs[other].Write.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	waitFor("the other server to take over", func() bool { return runs[other].Load() == 1 && active.Load() == 1 })
	// The new holder stops: the first gets it back.
	cancels[other]()
	waitFor("the first server to take it back", func() bool { return runs[holder].Load() == 2 && active.Load() == 1 })
	if most.Load() != 1 {
		t.Fatalf("%d ran at once", most.Load())
	}
}

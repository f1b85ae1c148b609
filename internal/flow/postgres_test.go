package flow

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/pgtest"
	"github.com/picoflow/picoflow/internal/store"
)

func openPG(t *testing.T, url string) *store.DB {
	db, err := store.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestOnPostgres runs flows with River and the runs on PostgreSQL.
func TestOnPostgres(t *testing.T) {
	t.Parallel()
	b := setupDB(t, openPG(t, pgtest.URL(t)))
	ctx := context.Background()
	r, created, err := b.eng.StartRun(ctx, RunSpec{Flow: "demo", SHA256: sha(1), FileName: "pg.emd"})
	if err != nil || !created {
		t.Fatal(created, err)
	}
	if r = b.wait(t, r.ID); r.State != StateSucceeded || r.RecordID == "" {
		t.Fatalf("run %+v", r)
	}
	if _, again, _ := b.eng.StartRun(ctx, RunSpec{Flow: "demo", SHA256: sha(1), FileName: "copy.emd"}); again {
		t.Fatal("same content started twice")
	}
	r, _, _ = b.eng.StartRun(ctx, RunSpec{Flow: "bad", SHA256: sha(2), FileName: "cut.emd"})
	if r = b.wait(t, r.ID); r.State != StateFailed || !strings.Contains(r.Error, "truncated") {
		t.Fatalf("bad run %s %q", r.State, r.Error)
	}
	st, err := b.eng.Stats(ctx, time.Time{}, ListQuery{All: true})
	if err != nil || len(st) == 0 {
		t.Fatalf("stats %v %v", st, err)
	}
}

// TestTwoServersShareWork: two engines (two servers) on one PostgreSQL
// database; one stops mid-way, cancelling its running steps; the other
// finishes every run, each exactly once.
func TestTwoServersShareWork(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	a := setupDB(t, openPG(t, url))
	b := setupDB(t, openPG(t, url))
	ctx := context.Background()
	const n = 30
	var ids []string
	for i := range n {
		eng := a.eng
		if i%2 == 1 {
			eng = b.eng
		}
		r, _, err := eng.StartRun(ctx, RunSpec{Flow: "demo", SHA256: sha(1000 + i), FileName: "x.emd"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	var once sync.Once
	stopA := func() {
		once.Do(func() {
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			a.eng.client.StopAndCancel(c)
		})
	}
	time.AfterFunc(50*time.Millisecond, stopA)
	for _, id := range ids {
		r := b.wait(t, id)
		if r.State != StateSucceeded {
			t.Fatalf("run %s: %s %q", id, r.State, r.Error)
		}
	}
	var jobs int
	if err := b.db.Read.QueryRow(`SELECT count(*) FROM river_job WHERE kind = 'picoflow_step' AND state = 'completed'`).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if jobs != 3*n {
		t.Fatalf("%d completed step jobs for %d three-step runs", jobs, n)
	}
}

// TestHandOffBetweenServers: a run started on a server that runs no
// workers is picked up by another server at once (PostgreSQL LISTEN/NOTIFY
// through River's pgx listener), not at that server's next poll.
func TestHandOffBetweenServers(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	front := setupEngine(t, openPG(t, url), false, nil)
	const poll = time.Minute
	worker := setupEngine(t, openPG(t, url), true, func(c *EngineConfig) { c.PollInterval = poll })
	ctx := context.Background()
	// River's first fetch happens at start; let it pass with nothing to do.
	time.Sleep(500 * time.Millisecond)
	var slowest time.Duration
	for i := range 5 {
		t0 := time.Now()
		r, _, err := front.eng.StartRun(ctx, RunSpec{Flow: "demo", SHA256: sha(2000 + i), FileName: "h.emd"})
		if err != nil {
			t.Fatal(err)
		}
		if r = worker.wait(t, r.ID); r.State != StateSucceeded {
			t.Fatalf("run %s %q", r.State, r.Error)
		}
		slowest = max(slowest, time.Since(t0))
	}
	t.Logf("slowest of 5 three-step runs handed between servers: %v (poll interval %v)", slowest, poll)
	if slowest > poll/4 {
		t.Fatalf("a run took %v: the worker server waited for its poll instead of being notified", slowest)
	}
}

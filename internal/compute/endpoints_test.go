package compute_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/compute"
	"github.com/picoflow/picoflow/internal/pgtest"
)

// testEndpoints: endpoints that claim through queue a are listed, with
// their counts and first claim, by queue b (the same queue on SQLite;
// another server on the same PostgreSQL database).
func testEndpoints(t *testing.T, a, b *compute.Queue) {
	ctx := context.Background()
	t0 := time.Now()
	if eps, err := b.Endpoints(ctx, time.Time{}); err != nil || len(eps) != 0 {
		t.Fatalf("before any claim: %v %v", eps, err)
	}
	for i := range 3 {
		if _, err := a.Submit(ctx, "run", i, "analyze", compute.Input{FileName: "x.emd"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, errMsg := range []string{"", "bad file"} {
		tk, err := a.Claim(ctx, "ep1", 0)
		if err != nil || tk == nil {
			t.Fatalf("claim: %v %v", tk, err)
		}
		if err := a.Complete(ctx, tk.ID, "ep1", []byte(`{}`), errMsg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Claim(ctx, "ep2", 0); err != nil {
		t.Fatal(err)
	}
	eps, err := b.Endpoints(ctx, t0.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]compute.EndpointInfo{}
	for _, e := range eps {
		got[e.Name] = e
	}
	if e := got["ep1"]; len(eps) != 2 || e.Done != 1 || e.Failed != 1 || e.Running != 0 || !e.Alive {
		t.Fatalf("ep1 %+v (of %d)", e, len(eps))
	}
	if e := got["ep2"]; e.Running != 1 || e.Done != 0 || !e.Alive || e.LastSeen.Before(e.FirstSeen) || e.FirstSeen.Before(t0.Add(-time.Second)) {
		t.Fatalf("ep2 %+v", e)
	}
	if first, err := b.FirstClaim(ctx, "ep2"); err != nil || first == nil || !first.Equal(got["ep2"].FirstSeen) {
		t.Fatalf("first claim of ep2 through the other queue: %v %v", first, err)
	}
	if first, err := b.FirstClaim(ctx, "never"); err != nil || first != nil {
		t.Fatalf("first claim of an unknown endpoint: %v %v", first, err)
	}
	if eps, _ := b.Endpoints(ctx, time.Now().Add(time.Minute)); len(eps) != 0 {
		t.Fatalf("endpoints heard from in the future: %v", eps)
	}
}

func TestEndpointsSQLite(t *testing.T) {
	t.Parallel()
	q := newQueue(t)
	testEndpoints(t, q, q)
}

func TestEndpointsPostgres(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	_, a := pgQueue(t, url)
	_, b := pgQueue(t, url)
	testEndpoints(t, a, b)
}

// TestRelease: a task given back by the endpoint that claimed it is
// pending again at once, its attempt not counted; nobody else can give it
// back.
func TestRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q := newQueue(t)
	sub, err := q.Submit(ctx, "run", 1, "analyze", compute.Input{FileName: "x.emd"})
	if err != nil {
		t.Fatal(err)
	}
	tk, err := q.Claim(ctx, "gone", 0)
	if err != nil || tk == nil || tk.ID != sub.ID || tk.Attempts != 1 {
		t.Fatalf("claim: %+v %v", tk, err)
	}
	if err := q.Release(ctx, tk.ID, "other"); !errors.Is(err, compute.ErrNotFound) {
		t.Fatalf("release by another endpoint: %v", err)
	}
	if n, _ := q.PendingCount(ctx); n != 0 {
		t.Fatalf("%d pending while claimed", n)
	}
	if err := q.Release(ctx, tk.ID, "gone"); err != nil {
		t.Fatal(err)
	}
	again, err := q.Claim(ctx, "next", 0)
	if err != nil || again == nil || again.ID != sub.ID || again.Attempts != 1 {
		t.Fatalf("claim after release: %+v %v", again, err)
	}
}

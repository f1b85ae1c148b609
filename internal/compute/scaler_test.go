package compute_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/compute"
	"github.com/picoflow/picoflow/internal/compute/local"
	"github.com/picoflow/picoflow/internal/store"
)

// newQueue returns a task queue on a fresh database.
func newQueue(t *testing.T) *compute.Queue {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return compute.NewQueue(db.Write, db.Read)
}

func TestScalerBlocks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q := newQueue(t)
	dir := t.TempDir()
	s := &compute.Scaler{Queue: q, Provider: local.New(), Max: 2, SpecFunc: func(name string) compute.BlockSpec {
		return compute.BlockSpec{Name: name, Dir: dir, Command: []string{"sleep", "1"}}
	}}
	s.Start(ctx) // the loop runs alongside; RunOnce is also called directly
	s.Stop()
	if err := s.RunOnce(ctx); err != nil || len(s.Blocks()) != 0 {
		t.Fatalf("no work: %d blocks, %v", len(s.Blocks()), err)
	}
	if _, err := q.Submit(ctx, "run-1", 1, "analyze", compute.Input{FileName: "a.emd"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	blocks := s.Blocks()
	if len(blocks) != 2 {
		t.Fatalf("%d blocks for pending work with max 2", len(blocks))
	}
	// Each block's endpoint asks for work as it starts (one gets the task):
	// their start-up times are known.
	task, err := q.Claim(ctx, blocks[0].Name, 0)
	if err != nil || task == nil {
		t.Fatalf("claim: %v", err)
	}
	if other, err := q.Claim(ctx, blocks[1].Name, 0); err != nil || other != nil {
		t.Fatalf("second claim: %v %v", other, err)
	}
	s.RunOnce(ctx)
	var started int
	for _, b := range s.Blocks() {
		if b.FirstClaim != nil {
			started++
			if d := b.FirstClaim.Sub(b.Submitted); d < 0 || d > time.Minute {
				t.Errorf("start-up time %v", d)
			}
		}
	}
	if started != 2 {
		t.Fatalf("%d blocks with a start-up time, want 2", started)
	}
	if err := q.Complete(ctx, task.ID, blocks[0].Name, []byte(`{}`), ""); err != nil {
		t.Fatal(err)
	}
	// The blocks end (idle endpoints exit); with nothing pending, none replaces them.
	deadline := time.Now().Add(20 * time.Second)
	for len(s.Blocks()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("blocks never finished: %+v", s.Blocks())
		}
		time.Sleep(100 * time.Millisecond)
		s.RunOnce(ctx)
	}
	// A minimum keeps blocks up without work.
	s.Min = 1
	s.RunOnce(ctx)
	if len(s.Blocks()) != 1 {
		t.Fatalf("min 1: %d blocks", len(s.Blocks()))
	}
}

// TestScalerBacksOffBrokenBlocks: blocks that end without their endpoint
// ever asking for work are not resubmitted at once.
func TestScalerBacksOffBrokenBlocks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q := newQueue(t)
	q.Submit(ctx, "run-1", 1, "analyze", compute.Input{FileName: "a.emd"})
	dir := t.TempDir()
	submitted := 0
	s := &compute.Scaler{Queue: q, Provider: local.New(), Max: 1, Interval: time.Second, SpecFunc: func(name string) compute.BlockSpec {
		submitted++
		return compute.BlockSpec{Name: name, Dir: dir, Command: []string{"false"}}
	}}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		s.RunOnce(ctx)
		time.Sleep(50 * time.Millisecond)
	}
	if submitted > 3 {
		t.Fatalf("%d submissions of a block that cannot start in 3 s", submitted)
	}
}

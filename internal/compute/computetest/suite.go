// Package computetest holds the behaviour every compute.Provider must show,
// as one suite run against each backend (local processes, a real Slurm,
// PBS through its command-line tools).
package computetest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/compute"
)

func waitFor(t *testing.T, p compute.Provider, id string, within time.Duration, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		s, err := p.Status(context.Background(), id)
		if err != nil {
			t.Fatalf("status %s: %v", id, err)
		}
		for _, w := range want {
			if s == w {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("block %s still %s after %v, want %v", id, s, within, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// RunSuite runs the suite. dir must be visible to the blocks (on a cluster,
// a shared file system).
func RunSuite(t *testing.T, p compute.Provider, dir string) {
	ctx := context.Background()
	t.Run("RunsWithEnvAndFinishes", func(t *testing.T) {
		out := filepath.Join(dir, "out-env")
		id, err := p.Submit(ctx, compute.BlockSpec{Name: "env", Dir: dir, Env: []string{"PICOFLOW_MARK=block says hi"},
			Command: []string{"sh", "-c", `echo "$PICOFLOW_MARK" > ` + out + `; sleep 1`}})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, p, id, 90*time.Second, compute.BlockFinished)
		b, err := os.ReadFile(out)
		if err != nil || strings.TrimSpace(string(b)) != "block says hi" {
			t.Fatalf("block output %q, %v", b, err)
		}
	})
	t.Run("Cancel", func(t *testing.T) {
		id, err := p.Submit(ctx, compute.BlockSpec{Name: "sleeper", Dir: dir, Command: []string{"sleep", "300"}})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, p, id, 60*time.Second, compute.BlockQueued, compute.BlockRunning)
		if err := p.Cancel(ctx, id); err != nil {
			t.Fatal(err)
		}
		waitFor(t, p, id, 60*time.Second, compute.BlockFinished)
		if err := p.Cancel(ctx, id); err != nil {
			t.Fatalf("second cancel: %v", err)
		}
	})
	t.Run("UnknownBlockIsFinished", func(t *testing.T) {
		if s, err := p.Status(ctx, "987654"); err != nil || s != compute.BlockFinished {
			t.Fatalf("unknown block: %s %v", s, err)
		}
	})
	t.Run("EmptyCommandRejected", func(t *testing.T) {
		if _, err := p.Submit(ctx, compute.BlockSpec{Name: "empty", Dir: dir}); !errors.Is(err, compute.ErrRejected) {
			t.Fatalf("empty command: %v", err)
		}
	})
}

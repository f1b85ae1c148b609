package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/box"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/simulate"
)

// TestReanalyzeCommand: `picoflow reanalyze` starts a campaign through the
// API, follows it to the end with progress lines and a summary, lists it,
// and refuses a missing token and an unknown parameter with a clear error.
func TestReanalyzeCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := box.Start(ctx, box.Config{Dir: t.TempDir(), Workers: workers, Settle: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(context.Background())
	for i := range 2 {
		if _, err := simulate.WriteSpectrumImage(ctx, filepath.Join(b.Folders["hyperspectral"], "si"+string(rune('a'+i))+".emd"),
			simulate.SpectrumImageSpec{Width: 24, Height: 24, Support: "C", Elements: []string{"Cu"}, CountsPerPixel: 50, Seed: uint64(60 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		runs, _ := b.Server.Engine.Runs(ctx, flow.ListQuery{State: flow.StateSucceeded, All: true})
		if len(runs) == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("files not processed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	run := func(token string, args ...string) (string, error) {
		t.Setenv("PICOFLOW_TOKEN", token)
		cmd := reanalyzeCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append([]string{"--server", b.Server.URL()}, args...))
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}
	if _, err := run("", "--query", "kind:hyperspectral"); err == nil || !strings.Contains(err.Error(), "PICOFLOW_TOKEN") {
		t.Errorf("no token: %v", err)
	}
	if _, err := run(b.AdminToken, "--query", "kind:hyperspectral", "--params", "sigma=3"); err == nil || !strings.Contains(err.Error(), `unknown analysis parameter "sigma"`) {
		t.Errorf("unknown parameter: %v", err)
	}
	out, err := run(b.AdminToken, "--query", "kind:hyperspectral", "--params", "min_significance=6")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("\n%s", out)
	if !regexp.MustCompile(`(?m)^\[#+\] 2/2  done 2 .* records/s`).MatchString(out) || !strings.Contains(out, "campaign c") || !strings.Contains(out, " done: 2 done, 0 skipped") {
		t.Errorf("no progress or summary:\n%s", out)
	}
	list, err := run(b.AdminToken, "--list")
	if err != nil || !strings.Contains(list, "kind:hyperspectral") || !strings.Contains(list, "done") {
		t.Errorf("list: %v\n%s", err, list)
	}
}

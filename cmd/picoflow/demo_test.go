package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoRelativeDir: the demo with a relative --dir and a short
// acquisition ends promptly with every file finished and the flow
// statistics, and says how to look at its data again. (It used to wait out
// a 10-minute deadline: the agent reports absolute paths.)
func TestDemoRelativeDir(t *testing.T) {
	t.Chdir(t.TempDir())
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	err := runDemo(ctx, &out, workers, demoOptions{dir: filepath.Join("out", "demo"), addr: "127.0.0.1:0", duration: 3 * time.Second,
		siEvery: 2 * time.Second, mvEvery: time.Hour, siSize: 64, siMB: 1, mvSize: 64, mvFrames: 5, settle: 200 * time.Millisecond})
	took := time.Since(t0)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if took > 90*time.Second {
		t.Errorf("the demo took %v", took)
	}
	if !strings.Contains(text, "done in") || !strings.Contains(text, "hyperspectral") || !strings.Contains(text, "data kept in") {
		t.Errorf("no summary in the demo's output")
	}
	if _, err := os.Stat(filepath.Join("out", "demo", "server", "picoflow.db")); err != nil {
		t.Errorf("the demo's data is not under the relative --dir: %v", err)
	}
}

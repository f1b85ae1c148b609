package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer the demo writes to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemoRelativeDir: the demo with a relative --dir and a short
// acquisition ends promptly with every file finished and the flow
// statistics, keeps its logs out of the terminal, and with --keep leaves the
// portal open until it is interrupted. (It used to wait out a 10-minute
// deadline: the agent reports absolute paths.)
func TestDemoRelativeDir(t *testing.T) {
	t.Chdir(t.TempDir())
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	var took time.Duration
	done := make(chan error, 1)
	go func() {
		done <- runDemo(ctx, &out, workers, demoOptions{dir: filepath.Join("out", "demo"), addr: "127.0.0.1:0", duration: 3 * time.Second,
			siEvery: 2 * time.Second, mvEvery: time.Hour, siSize: 64, siMB: 1, mvSize: 64, mvFrames: 5, settle: 200 * time.Millisecond, keep: true})
	}()
	open := regexp.MustCompile(`portal stays open at (http://\S+)/search until Ctrl-C`)
	var url string
	for url == "" {
		select {
		case err := <-done:
			t.Fatalf("the demo ended with --keep before it was interrupted: %v\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if m := open.FindStringSubmatch(out.String()); m != nil {
			url, took = m[1], time.Since(t0)
		}
	}
	resp, err := http.Get(url + "/search")
	if err != nil {
		t.Fatalf("portal after the demo: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("portal after the demo: %s", resp.Status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	text := out.String()
	t.Logf("demo output:\n%s", text)
	if took > 90*time.Second {
		t.Errorf("the demo took %v", took)
	}
	if !strings.Contains(text, "done in") || !strings.Contains(text, "hyperspectral") || !strings.Contains(text, "data kept in") {
		t.Errorf("no summary in the demo's output")
	}
	if strings.Contains(text, "level=") {
		t.Errorf("service log lines in the demo's output")
	}
	if _, err := os.Stat(filepath.Join("out", "demo", "server", "picoflow.db")); err != nil {
		t.Errorf("the demo's data is not under the relative --dir: %v", err)
	}
	if log, err := os.ReadFile(filepath.Join("out", "demo", "demo.log")); err != nil || !bytes.Contains(log, []byte("level=INFO")) {
		t.Errorf("no service log in DIR/demo.log (%v)", err)
	}
}

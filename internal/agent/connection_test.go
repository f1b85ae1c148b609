package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestAgentKeepsItsConnection: a running agent pings the server's upload
// endpoint every KeepConnection (which keeps its connection open for the
// next file); told never to, it does not.
func TestAgentKeepsItsConnection(t *testing.T) {
	var pings atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions && r.URL.Path == "/files/" {
			pings.Add(1)
			w.Header().Set("Tus-Resumable", "1.0.0")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		http.NotFound(w, r)
	}))
	defer ts.Close()
	for _, every := range []time.Duration{20 * time.Millisecond, -1} {
		pings.Store(0)
		ctx := context.Background()
		a, err := New(ctx, Config{Server: ts.URL, Token: "pf_x", Ledger: filepath.Join(t.TempDir(), "l.db"), KeepConnection: every,
			NormalPriority: true, Folders: []Folder{{Path: t.TempDir()}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		a.Stop()
		got := pings.Load()
		if every > 0 && got < 3 {
			t.Fatalf("pinging every %s: %d pings in 300 ms", every, got)
		}
		if every < 0 && got != 0 {
			t.Fatalf("told never to ping: %d pings", got)
		}
	}
}

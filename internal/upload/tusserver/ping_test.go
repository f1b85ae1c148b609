package tusserver_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/upload"
	"github.com/picoflow/picoflow/internal/upload/tusserver"
)

// TestPingKeepsTheConnection: a client that pings while it waits sends
// its next file on the connection it had (one TCP connection for two
// uploads a while apart), where one that does not has its idle
// connection closed and opens a new one; a ping also tells the client
// what the server takes. (A raw body used to be spliced from a hijacked
// connection, closed after every upload: two connections either way.)
func TestPingKeepsTheConnection(t *testing.T) {
	dir := t.TempDir()
	srv, err := tusserver.New(tusserver.Config{Dir: filepath.Join(dir, "uploads"), BasePath: "/files/"})
	if err != nil {
		t.Fatal(err)
	}
	var conns, requests atomic.Int64 // (requests: but pings)
	ts := httptest.NewUnstartedServer(http.StripPrefix("/files/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodOptions {
			requests.Add(1)
		}
		srv.Handler().ServeHTTP(w, r)
	})))
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	defer ts.Close()
	src := filepath.Join(dir, "a.emd")
	data := []byte("a small file")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	meta := map[string]string{upload.MetaFilename: "a.emd", upload.MetaSHA256: hex.EncodeToString(sum[:])}
	// An idle connection is closed after 300 ms (90 s in the agent).
	client := func() *upload.Client {
		tr := upload.NewTransport()
		tr.IdleConnTimeout = 300 * time.Millisecond
		return &upload.Client{Endpoint: ts.URL + "/files/", HTTP: &http.Client{Transport: tr}}
	}
	ctx := context.Background()
	send := func(c *upload.Client) {
		t.Helper()
		if _, err := c.Upload(ctx, src, "", meta, func(string) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, ping := range []bool{true, false} {
		conns.Store(0)
		c := client()
		send(c)
		for range 8 { // 800 ms
			time.Sleep(100 * time.Millisecond)
			if ping {
				if err := c.Ping(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		send(c)
		want := int64(2)
		if ping {
			want = 1
		}
		if got := conns.Load(); got != want {
			t.Fatalf("ping %v: %d connections for two uploads 800 ms apart, want %d", ping, got, want)
		}
	}
	// The first file of a client that pinged goes in the request that
	// creates its upload: the ping told it the server takes that (without
	// one, it is created first, then sent: a round trip more).
	for _, ping := range []bool{false, true} {
		c := client()
		if ping {
			if err := c.Ping(ctx); err != nil {
				t.Fatal(err)
			}
		}
		requests.Store(0)
		send(c)
		want := int64(2)
		if ping {
			want = 1
		}
		if got := requests.Load(); got != want {
			t.Fatalf("ping %v: the first file took %d requests, want %d", ping, got, want)
		}
	}
}

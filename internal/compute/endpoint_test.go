package compute

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/picoflow/picoflow/internal/replicas"
)

// TestSendMovesToNextReplica: a request with a file body goes to the next
// server when the first is down, with the whole body and its length (the
// transport closes a failed request's body, so the file must survive it).
func TestSendMovesToNextReplica(t *testing.T) {
	want := bytes.Repeat([]byte("product "), 100000)
	var got []byte
	var length int64
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		length = r.ContentLength
		got, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer live.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	path := filepath.Join(t.TempDir(), "map.png")
	os.WriteFile(path, want, 0o644)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e := &Endpoint{Server: down + "," + live.URL, Run: func(context.Context, *Task, string, string) (any, error) { return nil, nil },
		Logger: slog.New(slog.DiscardHandler), HTTP: &http.Client{}}
	e.servers, _ = replicas.Parse(e.Server)
	if _, err := e.call(context.Background(), http.MethodPut, "/p", f, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || length != int64(len(want)) {
		t.Fatalf("the live server got %d bytes (Content-Length %d), want %d", len(got), length, len(want))
	}
	if e.servers.Current() != live.URL {
		t.Fatal("the endpoint did not stay on the live server")
	}
}

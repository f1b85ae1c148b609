package tusserver_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/replicas"
	"github.com/picoflow/picoflow/internal/upload"
	"github.com/picoflow/picoflow/internal/upload/tusserver"
)

// TestUploadMovesToNextReplica: an upload half sent to replica A goes on at
// replica B (same upload directory) when A's proxy answers 503, from the
// offset B reports, and ends complete and checked at B.
func TestUploadMovesToNextReplica(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, sum := randomFile(t, dir, 4<<20)
	shared := filepath.Join(dir, "uploads")
	serve := func() http.Handler {
		srv, err := tusserver.New(tusserver.Config{Dir: shared, BasePath: "/files/"})
		if err != nil {
			t.Fatal(err)
		}
		return http.StripPrefix("/files/", srv.Handler())
	}
	var down atomic.Bool
	a := httptest.NewServer(func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	}(serve()))
	defer a.Close()
	b := httptest.NewServer(serve())
	defer b.Close()
	set, err := replicas.Parse(a.URL + "," + b.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := &upload.Client{Replicas: set}
	ctx := context.Background()
	u, err := c.Create(ctx, 4<<20, map[string]string{upload.MetaFilename: "data.emd", upload.MetaSHA256: sum})
	if err != nil || !strings.HasPrefix(u, a.URL+"/files/") {
		t.Fatalf("create at A: %s %v", u, err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	if off, err := c.Send(ctx, u, f, 0, 2<<20); err != nil || off != 2<<20 {
		t.Fatalf("first half to A: %d %v", off, err)
	}
	down.Store(true)
	uctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	done, err := c.Upload(uctx, path, u, nil, func(string) error { t.Fatal("a new upload was created"); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if done != b.URL+u[len(a.URL):] || set.Current() != b.URL {
		t.Fatalf("finished at %s (current %s), want the same upload at B", done, set.Current())
	}
	got, err := os.ReadFile(filepath.Join(shared, done[strings.LastIndex(done, "/")+1:]))
	want, _ := os.ReadFile(path)
	if err != nil || string(got) != string(want) {
		t.Fatalf("the upload at B is not the file (%d of %d bytes, %v)", len(got), len(want), err)
	}
}

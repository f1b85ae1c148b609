package tusserver_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/picoflow/picoflow/internal/upload"
	"github.com/picoflow/picoflow/internal/upload/tusserver"
)

// requestLog counts the requests a server got, by kind.
type requestLog struct {
	mu    sync.Mutex
	kinds []string
}

func (l *requestLog) add(r *http.Request) {
	k := r.Method
	if r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/offset+octet-stream" {
		k = "POST+body"
	}
	if r.Header.Get("Content-Encoding") != "" {
		k += "+zstd"
	}
	l.mu.Lock()
	l.kinds = append(l.kinds, k)
	l.mu.Unlock()
}

// since returns the kinds logged from the n-th on.
func (l *requestLog) since(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.kinds[n:], " ")
}

func (l *requestLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.kinds)
}

// infos counts the uploads the server keeps.
func infos(t *testing.T, dir string) int {
	m, err := filepath.Glob(filepath.Join(dir, "*.info"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// TestCreateWithBody: once a client knows the server takes bytes in a
// creation, a small file goes in one request (raw, or zstd), stored
// byte-identical with its SHA-256 checked on arrival; bad metadata is
// refused with nothing kept; a creation cut short is followed by a bare
// one that completes.
func TestCreateWithBody(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	uploads := filepath.Join(dir, "uploads")
	srv, err := tusserver.New(tusserver.Config{Dir: uploads, BasePath: "/files/"})
	if err != nil {
		t.Fatal(err)
	}
	var log requestLog
	mux := http.NewServeMux()
	mux.Handle("/files/", http.StripPrefix("/files/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		srv.Handler().ServeHTTP(w, r)
	})))
	ts := newServer(t, mux)
	send := func(c *upload.Client, p, sum, name string) (string, error) {
		var saved string
		u, err := c.Upload(context.Background(), p, "", map[string]string{upload.MetaFilename: name, upload.MetaSHA256: sum}, func(s string) error { saved = s; return nil })
		if err == nil && saved != u {
			t.Fatalf("saved %q, uploaded %q", saved, u)
		}
		return u, err
	}
	c := &upload.Client{Endpoint: ts.URL + "/files/", Compress: upload.CompressNever}
	first, firstSum := randomFile(t, t.TempDir(), 300<<10)
	if _, err := send(c, first, firstSum, "a.emd"); err != nil {
		t.Fatal(err)
	}
	if got := log.since(0); got != "POST PATCH" {
		t.Fatalf("a client new to the server: %q, want a bare creation and a PATCH", got)
	}
	// Raw, in one request.
	n := log.len()
	p, sum := randomFile(t, t.TempDir(), 1<<20+7)
	u, err := send(c, p, sum, "b.emd")
	if err != nil {
		t.Fatal(err)
	}
	checkStored(t, srv, u, p, sum)
	if got := log.since(n); got != "POST+body" {
		t.Fatalf("requests %q, want one creation with the bytes", got)
	}
	// Compressed, in one request.
	c.Compress = upload.CompressAlways
	n = log.len()
	counts, csum := countsFile(t, t.TempDir(), 2<<20+5)
	if u, err = send(c, counts, csum, "c.emd"); err != nil {
		t.Fatal(err)
	}
	checkStored(t, srv, u, counts, csum)
	if got := log.since(n); got != "POST+body+zstd" {
		t.Fatalf("requests %q, want one compressed creation", got)
	}
	if st := c.Stats(); st.Wire >= st.Raw {
		t.Fatalf("wire %d bytes for %d", st.Wire, st.Raw)
	}
	// Metadata the server refuses: nothing is kept.
	before := infos(t, uploads)
	if _, err := send(c, p, sum, "../x.emd"); !errors.Is(err, upload.ErrRejected) {
		t.Fatalf("a bad file name: %v, want rejected", err)
	}
	if infos(t, uploads) != before {
		t.Fatal("a refused creation left an upload")
	}
	// The creation's connection cut in its body: created again, bare, and
	// finished (the first, whose URL the client never learnt, is left to
	// the sweep).
	cut := &upload.Client{Endpoint: ts.URL + "/files/", Compress: upload.CompressNever, HTTP: &http.Client{Transport: cutNth(3, 200<<10)}}
	if _, err := send(cut, first, firstSum, "d.emd"); err != nil { // connections 1 and 2
		t.Fatal(err)
	}
	n = log.len()
	if u, err = send(cut, p, sum, "e.emd"); err != nil {
		t.Fatal(err)
	}
	checkStored(t, srv, u, p, sum)
	if got := log.since(n); got != "POST+body POST PATCH" {
		t.Fatalf("after a cut creation: %q, want it made again bare", got)
	}
}

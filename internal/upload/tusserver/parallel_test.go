package tusserver_test

import (
	"context"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/linkem"
	"github.com/picoflow/picoflow/internal/upload"
	"github.com/picoflow/picoflow/internal/upload/tusserver"
)

// creations counts the partial and final uploads created through mux.
type creations struct{ partial, final, plain atomic.Int64 }

func countingMux(srv *tusserver.Server, c *creations, caller func(*http.Request) *http.Request) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/files/", http.StripPrefix("/files/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			switch h := r.Header.Get("Upload-Concat"); {
			case h == "partial":
				c.partial.Add(1)
			case strings.HasPrefix(h, "final;"):
				c.final.Add(1)
			default:
				c.plain.Add(1)
			}
		}
		if caller != nil {
			r = caller(r)
		}
		srv.Handler().ServeHTTP(w, r)
	})))
	return mux
}

type subjectKey struct{}

// TestParallelUpload: across a link with 20 ms of round trip a large file
// goes as several parts at once; the final upload is the file, byte for
// byte, with its SHA-256 computed at the server; a restarted client
// resumes the parts it saved instead of making new ones; asking for the
// final again gives the same one; nobody else may join the parts; and
// removing the final removes its parts.
func TestParallelUpload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, err := tusserver.New(tusserver.Config{Dir: filepath.Join(dir, "uploads"), BasePath: "/files/",
		Caller: func(ctx context.Context) (string, bool) { s, _ := ctx.Value(subjectKey{}).(string); return s, false }})
	if err != nil {
		t.Fatal(err)
	}
	var n creations
	mux := countingMux(srv, &n, func(r *http.Request) *http.Request {
		who := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		return r.WithContext(context.WithValue(r.Context(), subjectKey{}, who))
	})
	ts := newServer(t, mux)
	px, err := linkem.Start("127.0.0.1:0", ts.Listener.Addr().String(), linkem.Link{Rate: 200e6, RTT: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	src, sum := randomFile(t, dir, 80<<20)
	meta := map[string]string{upload.MetaFilename: "movie.emd", upload.MetaSHA256: sum}
	endpoint := "http://" + px.Addr() + "/files/"

	// The first try is stopped once about half the bytes are sent.
	c := &upload.Client{Endpoint: endpoint, Token: "alice"}
	ctx, cancel := context.WithCancel(context.Background())
	var saved string
	go func() {
		for received(filepath.Join(dir, "uploads")) < 30<<20 {
			time.Sleep(2 * time.Millisecond)
		}
		cancel()
	}()
	if _, err := c.Upload(ctx, src, "", meta, func(u string) error { saved = u; return nil }); err == nil {
		t.Fatal("the stopped upload finished")
	}
	parts := strings.Fields(strings.TrimPrefix(saved, "parts:"))
	if !strings.HasPrefix(saved, "parts:") || len(parts) < 2 || int64(len(parts)) != n.partial.Load() {
		t.Fatalf("saved %q after %d partial uploads: not parallel", saved, n.partial.Load())
	}
	t.Logf("%d streams for a 20 ms round trip", len(parts))

	// A new client (a restarted agent) resumes the saved parts.
	c2 := &upload.Client{Endpoint: endpoint, Token: "alice"}
	final, err := c2.Upload(context.Background(), src, saved, meta, func(u string) error { saved = u; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if n.partial.Load() != int64(len(parts)) || n.plain.Load() != 0 || n.final.Load() != 1 {
		t.Fatalf("%d partial, %d plain, %d final uploads created: the resume did not reuse the parts", n.partial.Load(), n.plain.Load(), n.final.Load())
	}
	if sent := c.Stats().Raw + c2.Stats().Raw; sent > 80<<20+int64(len(parts))*(8<<20) {
		t.Fatalf("%d bytes sent for 80 MiB: the resume started parts again", sent)
	}
	checkStored(t, srv, final, src, sum)
	// The parts were written in place: their own files hold no bytes, and
	// the join moved no data.
	for _, p := range parts {
		fi, err := os.Stat(filepath.Join(dir, "uploads", p[strings.LastIndex(p, "/")+1:]))
		if err != nil {
			t.Fatal(err)
		}
		if blocks := fi.Sys().(*syscall.Stat_t).Blocks; blocks != 0 || fi.Size() == 0 {
			t.Fatalf("part %s: %d bytes in %d blocks: not written in place", p, fi.Size(), blocks)
		}
	}
	up, _ := srv.Get(context.Background(), final[strings.LastIndex(final, "/")+1:])
	if !up.Final || up.Meta[upload.MetaOwner] != "alice" {
		t.Fatalf("final upload %+v", up)
	}

	// Asking for the final again (an answer lost) gives the same one.
	list := "final;" + strings.Join(parts, " ")
	post := func(token string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, endpoint, nil)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Concat", list)
		req.Header.Set("Upload-Metadata", upload.EncodeMetadata(meta))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post("alice"); resp.StatusCode != http.StatusCreated || !strings.HasSuffix(final, resp.Header.Get("Location")) {
		t.Fatalf("final again: %s at %q, first %s", resp.Status, resp.Header.Get("Location"), final)
	}
	// Someone else cannot join alice's parts.
	if resp := post("mallory"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("mallory joining alice's parts: %s", resp.Status)
	}
	// Nor write into the file of alice's first part, and nobody places a
	// part outside its file.
	first := parts[0][strings.LastIndex(parts[0], "/")+1:]
	for _, tc := range []struct {
		token, concat string
		part          map[string]string
		want          int
	}{
		{"mallory", "partial", map[string]string{upload.MetaPartWhole: "83886080", upload.MetaPartAt: "1000", upload.MetaPartOf: first}, http.StatusNotFound},
		{"alice", "partial", map[string]string{upload.MetaPartWhole: "83886080", upload.MetaPartAt: "83886000", upload.MetaPartOf: first}, http.StatusBadRequest},
		{"alice", "partial", map[string]string{upload.MetaPartWhole: "83886080", upload.MetaPartAt: "-5", upload.MetaPartOf: first}, http.StatusBadRequest},
		{"alice", "partial", map[string]string{upload.MetaPartWhole: "1000", upload.MetaPartAt: "0", upload.MetaPartOf: first}, http.StatusBadRequest},
		{"alice", "partial", map[string]string{upload.MetaPartWhole: "83886080", upload.MetaPartAt: "1000"}, http.StatusBadRequest},
		{"alice", "", map[string]string{upload.MetaPartWhole: "83886080", upload.MetaPartAt: "0"}, http.StatusBadRequest},
	} {
		m := maps.Clone(meta)
		maps.Copy(m, tc.part)
		req, _ := http.NewRequest(http.MethodPost, endpoint, nil)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Length", "1000")
		if tc.concat != "" {
			req.Header.Set("Upload-Concat", tc.concat)
		}
		req.Header.Set("Upload-Metadata", upload.EncodeMetadata(m))
		req.Header.Set("Authorization", "Bearer "+tc.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s creating %s %v: %s, want %d", tc.token, tc.concat, tc.part, resp.Status, tc.want)
		}
	}
	// Removing the final after its run took the data (moved it into the
	// raw store, as the transfer step does) removes the parts.
	if err := os.Rename(up.Path, filepath.Join(dir, "stored.emd")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Remove(up.ID); err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		id := p[strings.LastIndex(p, "/")+1:]
		if _, err := os.Stat(filepath.Join(dir, "uploads", id)); !os.IsNotExist(err) {
			t.Fatalf("part %s still there: %v", id, err)
		}
	}
}

// received is how many upload bytes the files in dir hold.
func received(dir string) int64 {
	var n int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && !strings.Contains(e.Name(), ".") {
			n += fi.Size()
		}
	}
	return n
}

package tusserver_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/picoflow/picoflow/internal/upload"
	"github.com/picoflow/picoflow/internal/upload/tusserver"
)

func randomFile(tb testing.TB, dir string, size int) (string, string) {
	tb.Helper()
	b := make([]byte, size)
	rand.Read(b)
	p := filepath.Join(dir, "data.emd")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return p, hex.EncodeToString(sum[:])
}

// failingBody ends a request body with an error after limit bytes, like a
// network cut in the middle of a PATCH.
type failingBody struct {
	r     io.ReadCloser
	left  int64
	count *atomic.Int64
}

func (f *failingBody) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, errors.New("connection reset")
	}
	p = p[:min(int64(len(p)), f.left)]
	n, err := f.r.Read(p)
	f.left -= int64(n)
	f.count.Add(int64(n))
	return n, err
}
func (f *failingBody) Close() error { return f.r.Close() }

func TestResumeAfterCutAndVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, sum := randomFile(t, dir, 20<<20)
	srv, err := tusserver.New(tusserver.Config{Dir: filepath.Join(dir, "uploads"), BasePath: "/files/", Flows: map[string]bool{"hyperspectral": true}})
	if err != nil {
		t.Fatal(err)
	}
	var patches, received atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("/files/", http.StripPrefix("/files/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			limit := int64(1 << 62)
			if patches.Add(1) == 1 {
				limit = 7 << 20 // the first PATCH is cut after 7 MiB
			}
			r.Body = &failingBody{r: r.Body, left: limit, count: &received}
		}
		srv.Handler().ServeHTTP(w, r)
	})))
	ts := httptest.NewServer(mux)
	defer ts.Close()

	c := &upload.Client{Endpoint: ts.URL + "/files/"}
	meta := map[string]string{upload.MetaFilename: "si.emd", upload.MetaSHA256: sum, upload.MetaFlow: "hyperspectral"}
	var saved string
	u, err := c.Upload(context.Background(), path, "", meta, func(s string) error { saved = s; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if saved != u || patches.Load() < 2 {
		t.Fatalf("url %s saved %s, %d patches", u, saved, patches.Load())
	}
	if got := received.Load(); got > 20<<20+1<<20 {
		t.Errorf("server received %d bytes for a 20 MiB file: the upload restarted instead of resuming", got)
	}
	info, err := srv.Get(context.Background(), u[strings.LastIndex(u, "/")+1:])
	if err != nil {
		t.Fatal(err)
	}
	if !info.Complete() || info.Meta[upload.MetaSHA256] != sum || info.Received.IsZero() {
		t.Fatalf("upload info %+v", info)
	}
	b, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != sum {
		t.Fatal("server copy differs from the source")
	}
}

func TestCreateValidatesMetadata(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, err := tusserver.New(tusserver.Config{Dir: dir, BasePath: "/files/", Flows: map[string]bool{"emd": true}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.StripPrefix("/files/", srv.Handler()))
	defer ts.Close()
	c := &upload.Client{Endpoint: ts.URL + "/files/"}
	good := strings.Repeat("ab", 32)
	for _, meta := range []map[string]string{
		{upload.MetaFilename: "../../etc/passwd", upload.MetaSHA256: good, upload.MetaFlow: "emd"},
		{upload.MetaFilename: "a.emd", upload.MetaSHA256: "xyz", upload.MetaFlow: "emd"},
		{upload.MetaFilename: "a.emd", upload.MetaSHA256: good, upload.MetaFlow: "unknown"},
		{upload.MetaSHA256: good, upload.MetaFlow: "emd"},
	} {
		if _, err := c.Create(context.Background(), 10, meta); !errors.Is(err, upload.ErrRejected) {
			t.Errorf("%v: %v, want ErrRejected", meta, err)
		}
	}
	if _, err := c.Create(context.Background(), 10, map[string]string{upload.MetaFilename: "a.emd", upload.MetaSHA256: good, upload.MetaFlow: "emd"}); err != nil {
		t.Errorf("valid create: %v", err)
	}
	if _, err := c.Offset(context.Background(), ts.URL+"/files/doesnotexist"); !errors.Is(err, upload.ErrGone) {
		t.Errorf("offset of a missing upload: %v, want ErrGone", err)
	}
}

// BenchmarkTransferVsCopy uploads a 256 MiB file over loopback with tus and
// copies the same file with io.Copy, in one run: compare the MB/s.
func BenchmarkTransferVsCopy(b *testing.B) {
	dir := b.TempDir()
	path, sum := randomFile(b, dir, 256<<20)
	b.Run("copy", func(b *testing.B) {
		b.SetBytes(256 << 20)
		for i := 0; b.Loop(); i++ {
			src, _ := os.Open(path)
			dst, _ := os.Create(filepath.Join(dir, "copy"))
			if _, err := io.Copy(dst, src); err != nil {
				b.Fatal(err)
			}
			src.Close()
			dst.Close()
		}
	})
	b.Run("tus", func(b *testing.B) {
		b.SetBytes(256 << 20)
		srv, err := tusserver.New(tusserver.Config{Dir: filepath.Join(dir, "up"), BasePath: "/files/"})
		if err != nil {
			b.Fatal(err)
		}
		ts := httptest.NewServer(http.StripPrefix("/files/", srv.Handler()))
		defer ts.Close()
		c := &upload.Client{Endpoint: ts.URL + "/files/"}
		for i := 0; b.Loop(); i++ {
			u, err := c.Upload(context.Background(), path, "", map[string]string{upload.MetaFilename: "a.emd", upload.MetaSHA256: sum}, func(string) error { return nil })
			if err != nil {
				b.Fatal(err)
			}
			srv.Remove(u[strings.LastIndex(u, "/")+1:])
		}
	})
}

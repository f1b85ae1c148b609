package tusserver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// cutConn fails its writes after limit bytes, like a network cut in the
// middle of a PATCH.
type cutConn struct {
	net.Conn
	left int64
}

func (c *cutConn) Write(p []byte) (int, error) {
	if c.left <= 0 {
		c.Conn.Close()
		return 0, errors.New("connection reset")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Write(p)
	c.left -= int64(n)
	return n, err
}

// cutFirstPatch is a transport (one connection per request) whose second
// connection, the first PATCH's after the POST (a new upload's offset is
// not asked for), is cut after n bytes.
func cutFirstPatch(n int64) *http.Transport { return cutNth(2, n) }

// cutNth is a transport (one connection per request) whose k-th
// connection is cut after n bytes.
func cutNth(k int64, n int64) *http.Transport {
	var dials atomic.Int64
	tr := upload.NewTransport()
	tr.DisableKeepAlives = true
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if dials.Add(1) == k {
			return &cutConn{Conn: c, left: n}, nil
		}
		return c, nil
	}
	return tr
}

func TestResumeAfterCutAndVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, sum := randomFile(t, dir, 20<<20)
	srv, err := tusserver.New(tusserver.Config{Dir: filepath.Join(dir, "uploads"), BasePath: "/files/", Flows: map[string]bool{"hyperspectral": true}})
	if err != nil {
		t.Fatal(err)
	}
	var patches atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("/files/", http.StripPrefix("/files/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			patches.Add(1)
		}
		srv.Handler().ServeHTTP(w, r)
	})))
	ts := httptest.NewServer(mux)
	defer ts.Close()

	// The first connection that carries a PATCH is cut after 7 MiB.
	c := &upload.Client{Endpoint: ts.URL + "/files/", HTTP: &http.Client{Transport: cutFirstPatch(7 << 20)}}
	meta := map[string]string{upload.MetaFilename: "si.emd", upload.MetaSHA256: sum, upload.MetaFlow: "hyperspectral"}
	var saved string
	u, err := c.Upload(context.Background(), path, "", meta, func(s string) error { saved = s; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if saved != u || patches.Load() < 2 {
		t.Fatalf("url %s saved %s, %d patches", u, saved, patches.Load())
	}
	info, err := srv.Get(context.Background(), u[strings.LastIndex(u, "/")+1:])
	if err != nil {
		t.Fatal(err)
	}
	if !info.Complete() || info.Meta[upload.MetaSHA256] != sum || info.Received.IsZero() {
		t.Fatalf("upload info %+v", info)
	}
	// Hashed as it arrived, across the cut and the resumed PATCH.
	if d := srv.Digest(info); d != sum {
		t.Fatalf("digest on arrival %q, want %s", d, sum)
	}
	b, err := os.ReadFile(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != sum {
		t.Fatal("server copy differs from the source")
	}
}

// TestPatchProtocolChecks drives the zero-copy PATCH path with bad requests.
func TestPatchProtocolChecks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, err := tusserver.New(tusserver.Config{Dir: dir, BasePath: "/files/"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.StripPrefix("/files/", srv.Handler()))
	defer ts.Close()
	c := &upload.Client{Endpoint: ts.URL + "/files/"}
	u, err := c.Create(context.Background(), 10, map[string]string{upload.MetaFilename: "a.emd", upload.MetaSHA256: strings.Repeat("0", 64)})
	if err != nil {
		t.Fatal(err)
	}
	patch := func(offset, body string, hdr map[string]string) int {
		req, _ := http.NewRequest(http.MethodPatch, u, strings.NewReader(body))
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", offset)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if d := time.Since(t0); d > 5*time.Second {
			t.Errorf("PATCH %s %q took %v", offset, body, d)
		}
		return resp.StatusCode
	}
	if s := patch("3", "abc", nil); s != http.StatusConflict {
		t.Errorf("wrong offset: %d", s)
	}
	if s := patch("0", "abc", map[string]string{"Content-Type": "text/plain"}); s != http.StatusUnsupportedMediaType {
		t.Errorf("wrong content type: %d", s)
	}
	if s := patch("0", "abc", map[string]string{"Tus-Resumable": "0.2"}); s != http.StatusPreconditionFailed {
		t.Errorf("wrong version: %d", s)
	}
	if s := patch("0", "abcdefghijkl", nil); s != http.StatusRequestEntityTooLarge {
		t.Errorf("past the declared length: %d", s)
	}
	if s := patch("0", "abcd", nil); s != http.StatusNoContent {
		t.Errorf("first part: %d", s)
	}
	if s := patch("4", "efghij", nil); s != http.StatusNoContent {
		t.Errorf("second part: %d", s)
	}
	info, err := srv.Get(context.Background(), u[strings.LastIndex(u, "/")+1:])
	if err != nil || !info.Complete() {
		t.Fatalf("%+v %v", info, err)
	}
	if b, _ := os.ReadFile(info.Path); string(b) != "abcdefghij" {
		t.Fatalf("stored %q", b)
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

// TestDigestRebuilt: the hash state kept beside an upload is rebuilt from
// the file when it is missing or stale, and a body sent chunked (tusd's own
// path, not hashed) leaves no digest, so the caller reads the file.
func TestDigestRebuilt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, sum := randomFile(t, dir, 3<<20)
	data, _ := os.ReadFile(path)
	up := filepath.Join(dir, "uploads")
	srv, err := tusserver.New(tusserver.Config{Dir: up, BasePath: "/files/"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.StripPrefix("/files/", srv.Handler()))
	defer ts.Close()
	c := &upload.Client{Endpoint: ts.URL + "/files/"}
	patch := func(u string, off, end int, chunked bool) {
		var body io.Reader = bytes.NewReader(data[off:end])
		if chunked {
			body = io.MultiReader(body) // unknown length: Transfer-Encoding: chunked
		}
		req, _ := http.NewRequest(http.MethodPatch, u, body)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Offset", strconv.Itoa(off))
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("PATCH %d-%d: %s", off, end, resp.Status)
		}
	}
	digest := func(u string) string {
		info, err := srv.Get(context.Background(), u[strings.LastIndex(u, "/")+1:])
		if err != nil {
			t.Fatal(err)
		}
		return srv.Digest(info)
	}
	meta := map[string]string{upload.MetaFilename: "a.emd", upload.MetaSHA256: sum}
	half := len(data) / 2
	for _, damage := range []string{"missing", "stale"} {
		u, err := c.Create(context.Background(), int64(len(data)), meta)
		if err != nil {
			t.Fatal(err)
		}
		state := filepath.Join(up, u[strings.LastIndex(u, "/")+1:]+".sha256")
		patch(u, 0, half/2, false)
		old, _ := os.ReadFile(state)
		patch(u, half/2, half, false)
		if damage == "missing" {
			os.Remove(state)
		} else {
			// As after a crash between the data's fsync and the state's
			// save: the state covers fewer bytes than the file has.
			os.WriteFile(state, old, 0o644)
		}
		patch(u, half, len(data), false)
		if d := digest(u); d != sum {
			t.Fatalf("%s state: digest %q, want %s", damage, d, sum)
		}
	}
	u, err := c.Create(context.Background(), int64(len(data)), meta)
	if err != nil {
		t.Fatal(err)
	}
	patch(u, 0, half, false)
	patch(u, half, len(data), true)
	if d := digest(u); d != "" {
		t.Fatalf("digest %q after a chunked PATCH the server did not hash", d)
	}
}

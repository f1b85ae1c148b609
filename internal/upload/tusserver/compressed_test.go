package tusserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/picoflow/picoflow/internal/upload"
	"github.com/picoflow/picoflow/internal/upload/tusserver"
)

// countsFile writes n bytes like a detector's counts (small numbers as
// little-endian uint16): data that compresses.
func countsFile(tb testing.TB, dir string, n int) (string, string) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(uint64(n), 9))
	b := make([]byte, n)
	for i := 0; i+1 < n; i += 2 {
		b[i] = byte(rng.IntN(5) + rng.IntN(5))
	}
	p := filepath.Join(dir, "counts.emd")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return p, hex.EncodeToString(sum[:])
}

// patchCounter mounts srv and counts the PATCHes that came compressed.
func patchCounter(t *testing.T, srv *tusserver.Server) (*http.ServeMux, *atomic.Int64, *atomic.Int64) {
	var raw, zstdPatches atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("/files/", http.StripPrefix("/files/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A PATCH, or a POST that creates an upload with its bytes.
		if r.Method == http.MethodPatch || r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/offset+octet-stream" {
			if r.Header.Get("Content-Encoding") == "zstd" {
				zstdPatches.Add(1)
			} else {
				raw.Add(1)
			}
		}
		srv.Handler().ServeHTTP(w, r)
	})))
	return mux, &raw, &zstdPatches
}

func checkStored(t *testing.T, srv *tusserver.Server, u, src, sum string) {
	t.Helper()
	info, err := srv.Get(context.Background(), u[strings.LastIndex(u, "/")+1:])
	if err != nil {
		t.Fatal(err)
	}
	if !info.Complete() {
		t.Fatalf("upload has %d of %d bytes", info.Offset, info.Size)
	}
	if d := srv.Digest(info); d != sum {
		t.Fatalf("digest on arrival %q, want %s", d, sum)
	}
	got, _ := os.ReadFile(info.Path)
	want, _ := os.ReadFile(src)
	if !bytes.Equal(got, want) {
		t.Fatal("the stored file is not byte-identical to the source")
	}
}

// TestCompressedUpload: a file that compresses goes zstd-encoded (fewer
// bytes on the wire), a file that does not goes raw on the zero-copy path,
// and either way the stored file is the source's bytes with its SHA-256.
func TestCompressedUpload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, err := tusserver.New(tusserver.Config{Dir: filepath.Join(dir, "uploads"), BasePath: "/files/"})
	if err != nil {
		t.Fatal(err)
	}
	mux, raw, comp := patchCounter(t, srv)
	ts := newServer(t, mux)
	counts, csum := countsFile(t, dir, 6<<20+333)
	random, rsum := randomFile(t, dir, 3<<20)

	// A link of 2 MB/s (the cap), slower than the compressor even on a
	// busy machine: compression wins if one thread compresses faster than
	// ~3 MB/s (at 10 MB/s it needed 14 MB/s, and a fresh clone's parallel
	// test run once measured less and sent the file raw).
	c := &upload.Client{Endpoint: ts.URL + "/files/", Limiter: upload.NewLimiter(2e6)}
	u, err := c.Upload(context.Background(), counts, "", map[string]string{upload.MetaFilename: "c.emd", upload.MetaSHA256: csum}, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	checkStored(t, srv, u, counts, csum)
	st := c.Stats()
	if comp.Load() != 1 || raw.Load() != 0 || st.Raw != 6<<20+333 || float64(st.Wire) > 0.6*float64(st.Raw) {
		t.Fatalf("counts: %d compressed and %d raw PATCHes, %d bytes carried by %d", comp.Load(), raw.Load(), st.Raw, st.Wire)
	}
	// (Random bytes go raw whatever the speed: they do not shrink.)
	fast := &upload.Client{Endpoint: ts.URL + "/files/", Limiter: upload.NewLimiter(10e6)}
	u, err = fast.Upload(context.Background(), random, "", map[string]string{upload.MetaFilename: "r.emd", upload.MetaSHA256: rsum}, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	checkStored(t, srv, u, random, rsum)
	if comp.Load() != 1 || raw.Load() != 1 {
		t.Fatalf("random data: %d compressed and %d raw PATCHes in all", comp.Load(), raw.Load())
	}
	// A client told never to compress does not.
	never := &upload.Client{Endpoint: ts.URL + "/files/", Compress: upload.CompressNever}
	u, err = never.Upload(context.Background(), counts, "", map[string]string{upload.MetaFilename: "c.emd", upload.MetaSHA256: csum}, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	checkStored(t, srv, u, counts, csum)
	if comp.Load() != 1 {
		t.Fatal("CompressNever sent a compressed PATCH")
	}
}

// TestCompressedResumeAfterCut: the connection of a compressed PATCH is
// cut part way; the server keeps the bytes it decoded, the client resumes
// from the offset the server reports, and the stored file is whole and
// hashed right across the cut.
func TestCompressedResumeAfterCut(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, err := tusserver.New(tusserver.Config{Dir: filepath.Join(dir, "uploads"), BasePath: "/files/"})
	if err != nil {
		t.Fatal(err)
	}
	mux, _, comp := patchCounter(t, srv)
	ts := newServer(t, mux)
	counts, sum := countsFile(t, dir, 24<<20)
	c := &upload.Client{Endpoint: ts.URL + "/files/", HTTP: &http.Client{Transport: cutFirstPatch(3 << 20)}, Compress: upload.CompressAlways}
	u, err := c.Upload(context.Background(), counts, "", map[string]string{upload.MetaFilename: "c.emd", upload.MetaSHA256: sum}, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if comp.Load() < 2 {
		t.Fatalf("%d compressed PATCHes: the cut did not happen in one", comp.Load())
	}
	checkStored(t, srv, u, counts, sum)
}

// TestCompressedPatchChecks sends hostile compressed bodies: not zstd,
// more bytes than declared, a declared length past the upload, a frame
// asking for a huge window. Each gets a clear 4xx, nothing past the
// upload's length is written, and what was written is the right prefix.
func TestCompressedPatchChecks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, err := tusserver.New(tusserver.Config{Dir: filepath.Join(dir, "uploads"), BasePath: "/files/"})
	if err != nil {
		t.Fatal(err)
	}
	mux, _, _ := patchCounter(t, srv)
	ts := newServer(t, mux)
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	sum := sha256.Sum256(data)
	c := &upload.Client{Endpoint: ts.URL + "/files/"}
	u, err := c.Create(context.Background(), int64(len(data)), map[string]string{upload.MetaFilename: "x.emd", upload.MetaSHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := zstd.NewWriter(nil)
	patch := func(offset int64, decoded string, body []byte) (int, string) {
		req, _ := http.NewRequest(http.MethodPatch, u, bytes.NewReader(body))
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
		req.Header.Set("Content-Encoding", "zstd")
		if decoded != "" {
			req.Header.Set(upload.HeaderDecodedLength, decoded)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := make([]byte, 512)
		n, _ := resp.Body.Read(b)
		return resp.StatusCode, string(b[:n])
	}
	offset := func() int64 {
		off, err := c.Offset(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		return off
	}
	// A window of 2 GiB in the frame header (exponent 21): refused by the
	// decoder's bound before anything is allocated.
	huge := []byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, 21 << 3, 0x01, 0x00, 0x00}
	for _, tc := range []struct {
		name    string
		decoded string
		body    []byte
		status  int
		kept    int64
	}{
		{"no decoded length", "", enc.EncodeAll(data[:1000], nil), http.StatusBadRequest, 0},
		{"not zstd", "1000", data[:1000], http.StatusBadRequest, 0},
		{"past the upload", strconv.Itoa(len(data) + 1), enc.EncodeAll(append(bytes.Clone(data), 'x'), nil), http.StatusRequestEntityTooLarge, 0},
		{"huge window", "1000", huge, http.StatusBadRequest, 0},
		{"more than declared", "1000", enc.EncodeAll(data[:5000], nil), http.StatusRequestEntityTooLarge, 1000},
	} {
		off := offset()
		status, msg := patch(off, tc.decoded, tc.body)
		if status != tc.status {
			t.Fatalf("%s: status %d (%s), want %d", tc.name, status, msg, tc.status)
		}
		if got := offset(); got != off+tc.kept {
			t.Fatalf("%s: offset %d after, want %d", tc.name, got, off+tc.kept)
		}
	}
	// The prefix written is right, and the upload finishes from it.
	off := offset()
	if status, msg := patch(off, fmt.Sprint(len(data)-int(off)), enc.EncodeAll(data[off:], nil)); status != http.StatusNoContent {
		t.Fatalf("the rest: %d %s", status, msg)
	}
	checkStoredBytes(t, srv, u, data)
}

func checkStoredBytes(t *testing.T, srv *tusserver.Server, u string, want []byte) {
	t.Helper()
	info, err := srv.Get(context.Background(), u[strings.LastIndex(u, "/")+1:])
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(info.Path)
	if !bytes.Equal(got, want) {
		t.Fatalf("stored %d bytes, not the %d sent", len(got), len(want))
	}
	sum := sha256.Sum256(want)
	if d := srv.Digest(info); d != hex.EncodeToString(sum[:]) {
		t.Fatalf("digest %q", d)
	}
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts
}

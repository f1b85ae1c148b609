package tusserver_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/upload"
	"github.com/picoflow/picoflow/internal/upload/tusserver"
)

func mount(t *testing.T, cfg tusserver.Config) (*tusserver.Server, *httptest.Server) {
	t.Helper()
	cfg.BasePath = "/files/"
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "uploads")
	}
	srv, err := tusserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/files/", http.StripPrefix("/files/", srv.Handler()))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return srv, ts
}

var meta = map[string]string{upload.MetaFilename: "a.emd", upload.MetaSHA256: strings.Repeat("ab", 32), upload.MetaFlow: "emd"}

// TestStalledPatchLetsGo: a PATCH whose body stops moving neither holds
// its upload for ever (the watchdog ends it) nor blocks a resume: a HEAD
// from the resuming client asks the stalled request to let go at once,
// and the bytes that did arrive are kept.
func TestStalledPatchLetsGo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		stall time.Duration
		head  bool
	}{{"a resume takes over", time.Hour, true}, {"the watchdog ends it", 300 * time.Millisecond, false}} {
		t.Run(tc.name, func(t *testing.T) {
			_, ts := mount(t, tusserver.Config{StallTimeout: tc.stall})
			c := &upload.Client{Endpoint: ts.URL + "/files/"}
			u, err := c.Create(context.Background(), 1<<20, meta)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			path := strings.TrimPrefix(u, ts.URL)
			fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n%s", path, 1<<20, strings.Repeat("z", 1000))
			time.Sleep(200 * time.Millisecond) // the PATCH holds the lock, its body stalled
			t0 := time.Now()
			if tc.head {
				off, err := c.Offset(context.Background(), u)
				if err != nil || off != 1000 {
					t.Fatalf("offset %d, %v; want 1000", off, err)
				}
			} else {
				conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := bufio.NewReader(conn).ReadString('\n'); err == nil {
					t.Log("the stalled PATCH was answered")
				}
				off, err := c.Offset(context.Background(), u)
				if err != nil || off != 1000 {
					t.Fatalf("offset %d, %v; want 1000", off, err)
				}
			}
			if d := time.Since(t0); d > 5*time.Second {
				t.Fatalf("the stalled PATCH held the upload for %v", d)
			}
		})
	}
}

// TestForwardedHeadersFromTrustedProxiesOnly: X-Forwarded-Host shapes the
// Location of a new upload only when a configured proxy sends it.
func TestForwardedHeadersFromTrustedProxiesOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		trusted []netip.Prefix
		want    string
	}{{nil, "127.0.0.1"}, {[]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "facility.example"}} {
		_, ts := mount(t, tusserver.Config{TrustedProxies: tc.trusted})
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/files/", nil)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Length", "10")
		req.Header.Set("Upload-Metadata", upload.EncodeMetadata(meta))
		req.Header.Set("X-Forwarded-Host", "facility.example")
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != 201 || !strings.Contains(loc, "//"+tc.want) {
			t.Errorf("trusted %v: %d Location %q, want host %s", tc.trusted, resp.StatusCode, loc, tc.want)
		}
	}
}

// TestUploadThatDoesNotFitIsRefused: an upload larger than the free space
// (less the headroom) is refused at creation with 507 and says why.
func TestUploadThatDoesNotFitIsRefused(t *testing.T) {
	t.Parallel()
	// A server that keeps 1 EiB free has no room for anything.
	_, full := mount(t, tusserver.Config{MinFree: 1 << 60})
	c := &upload.Client{Endpoint: full.URL + "/files/"}
	_, err := c.Create(context.Background(), 1<<20, meta)
	if err == nil || !strings.Contains(err.Error(), "507") || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("an upload that does not fit: %v", err)
	}
	_, roomy := mount(t, tusserver.Config{})
	c = &upload.Client{Endpoint: roomy.URL + "/files/"}
	if _, err := c.Create(context.Background(), 1<<20, meta); err != nil {
		t.Fatalf("a 1 MiB upload with the default headroom: %v", err)
	}
}

// TestSweepRemovesAbandonedUploadsOnly: unfinished uploads untouched for
// the expiry time and the leftovers of failures go; finished uploads,
// recent ones and data without bookkeeping stay.
func TestSweepRemovesAbandonedUploadsOnly(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "uploads")
	srv, ts := mount(t, tusserver.Config{Dir: dir})
	c := &upload.Client{Endpoint: ts.URL + "/files/"}
	ctx := context.Background()
	id := func(u string) string { return u[strings.LastIndex(u, "/")+1:] }
	abandoned, _ := c.Create(ctx, 100, meta)
	recent, _ := c.Create(ctx, 100, meta)
	finished, _ := c.Create(ctx, 3, meta)
	src := filepath.Join(t.TempDir(), "three")
	os.WriteFile(src, []byte("abc"), 0o644)
	f, _ := os.Open(src)
	if _, err := c.Send(ctx, finished, f, 0, 3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	old := time.Now().Add(-10 * 24 * time.Hour)
	touch := func(names ...string) {
		for _, n := range names {
			if err := os.Chtimes(filepath.Join(dir, n), old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	touch(id(abandoned), id(abandoned)+".info", id(finished), id(finished)+".info")
	// A file parts were written into stays while its first part is there.
	for name, data := range map[string]string{"gone.info": "{}", "gone.sha256": "x", "emptydata": "", "keptdata": "bytes", "fresh.sha256": "x",
		"gone.whole": "parts", id(recent) + ".whole": "parts"} {
		os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644)
		if name != "fresh.sha256" {
			touch(name)
		}
	}
	rep, err := srv.Sweep(ctx, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Expired) != 1 || rep.Expired[0] != id(abandoned) {
		t.Errorf("expired %v, want [%s]", rep.Expired, id(abandoned))
	}
	for _, n := range []string{id(abandoned), id(abandoned) + ".info", "gone.info", "gone.sha256", "emptydata", "gone.whole"} {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("%s is still there", n)
		}
	}
	for _, n := range []string{id(recent), id(recent) + ".info", id(finished), id(finished) + ".info", "keptdata", "fresh.sha256", id(recent) + ".whole"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s was removed: %v", n, err)
		}
	}
}

// TestDiskFullDuringPatch: when the disk fills during a PATCH, the client
// is told so (507) instead of losing its connection, and may resume later.
// The upload's data file is pointed at /dev/full, whose writes fail with
// ENOSPC.
func TestDiskFullDuringPatch(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "uploads")
	_, ts := mount(t, tusserver.Config{Dir: dir})
	c := &upload.Client{Endpoint: ts.URL + "/files/"}
	u, err := c.Create(context.Background(), 1<<20, meta)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, u[strings.LastIndex(u, "/")+1:])
	if err := os.Remove(data); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/full", data); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPatch, u, strings.NewReader(strings.Repeat("z", 1<<20)))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Offset", "0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PATCH on a full disk: %v (want a 507 answer, not a dropped connection)", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("PATCH on a full disk: %d, want 507", resp.StatusCode)
	}
}

package tusserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/picoflow/picoflow/internal/pgtest"
	"github.com/picoflow/picoflow/internal/upload"
	"github.com/picoflow/picoflow/internal/upload/tusserver"
)

// TestPostgresLockerAcrossServers: two lockers on separate connection
// pools (two servers) exclude each other on one upload, not on another;
// a server that dies holding a lock (its pool closed) releases it.
func TestPostgresLockerAcrossServers(t *testing.T) {
	t.Parallel()
	poolB := pgtest.Pool(t)
	a, b := tusserver.NewPostgresLocker(pgtest.Pool(t)), tusserver.NewPostgresLocker(poolB)
	ctx := context.Background()
	held, _ := a.NewLock("u1")
	if err := held.Lock(ctx, func() {}); err != nil {
		t.Fatal(err)
	}
	try := func(l *tusserver.PostgresLocker, id string) error {
		k, _ := l.NewLock(id)
		c, cancel := context.WithTimeout(ctx, 400*time.Millisecond)
		defer cancel()
		if err := k.Lock(c, func() {}); err != nil {
			return err
		}
		return k.Unlock()
	}
	if err := try(b, "u1"); !errors.Is(err, handler.ErrLockTimeout) {
		t.Fatalf("second server locked a held upload: %v", err)
	}
	if err := try(b, "u2"); err != nil {
		t.Fatalf("another upload: %v", err)
	}
	if err := held.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := try(b, "u1"); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	// A server dies holding the lock: its sessions end.
	dying, _ := a.NewLock("u3")
	if err := dying.Lock(ctx, func() {}); err != nil {
		t.Fatal(err)
	}
	if err := try(b, "u3"); !errors.Is(err, handler.ErrLockTimeout) {
		t.Fatalf("u3 not held: %v", err)
	}
	// As when its process is killed: its session ends.
	if _, err := poolB.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1
		AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('picoflow upload u3', 0)`); err != nil {
		t.Fatal(err)
	}
	defer dying.Unlock() // on a dead session: must not hang or panic
	deadline := time.Now().Add(10 * time.Second)
	for try(b, "u3") != nil {
		if time.Now().After(deadline) {
			t.Fatal("the dead server's lock was never released")
		}
	}
}

// TestUploadResumesOnAnotherServer: two servers share the upload directory;
// an upload begun on one is finished on the other and verified.
func TestUploadResumesOnAnotherServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, sum := randomFile(t, dir, 6<<20)
	shared := filepath.Join(dir, "uploads")
	serve := func() *httptest.Server {
		srv, err := tusserver.New(tusserver.Config{Dir: shared, BasePath: "/files/", Locker: tusserver.NewPostgresLocker(pgtest.Pool(t))})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(http.StripPrefix("/files/", srv.Handler()))
		t.Cleanup(ts.Close)
		return ts
	}
	a, b := serve(), serve()
	meta := map[string]string{upload.MetaFilename: "si.emd", upload.MetaSHA256: sum, upload.MetaFlow: "hyperspectral"}
	u, err := (&upload.Client{Endpoint: a.URL + "/files/"}).Create(context.Background(), 6<<20, meta)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	req, _ := http.NewRequest(http.MethodPatch, u, bytes.NewReader(data[:2<<20]))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Offset", "0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first part on server A: %s", resp.Status)
	}
	// Server A is gone; the agent resumes the same upload on B.
	a.Close()
	atB := b.URL + "/files/" + u[strings.LastIndex(u, "/")+1:]
	got, err := (&upload.Client{Endpoint: b.URL + "/files/"}).Upload(context.Background(), path, atB, meta, func(string) error { return nil })
	if err != nil || got != atB {
		t.Fatalf("resume on B: %s %v", got, err)
	}
	stored, err := os.ReadFile(filepath.Join(shared, u[strings.LastIndex(u, "/")+1:]))
	if err != nil {
		t.Fatal(err)
	}
	if s := sha256.Sum256(stored); hex.EncodeToString(s[:]) != sum {
		t.Fatal("the copy finished on B differs from the source")
	}
}

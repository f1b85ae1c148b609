package tusserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/tus/tusd/v2/pkg/memorylocker"

	"github.com/picoflow/picoflow/internal/upload"
)

// sparseCounts is a spectrum image's counts as a detector writes them: a
// uint16 per channel, nearly all zero (compresses ~30-fold).
func sparseCounts(n int) []byte {
	rng := rand.New(rand.NewPCG(7, 11))
	b := make([]byte, n)
	for i := 0; i+1 < n; i += 2 {
		if rng.IntN(25) == 0 {
			b[i] = byte(1 + rng.IntN(9))
		}
	}
	return b
}

// uploadCompressed sends data as a compressing agent does, to a new server
// on dir, and returns the server and the upload's ID.
func uploadCompressed(t *testing.T, dir string, data []byte) (*Server, string) {
	t.Helper()
	return uploadCompressedTo(t, Config{Dir: dir, BasePath: "/files/"}, data)
}

// uploadCompressedTo is uploadCompressed to a new server of cfg.
func uploadCompressedTo(t *testing.T, cfg Config, data []byte) (*Server, string) {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(http.StripPrefix("/files/", srv.Handler()))
	t.Cleanup(ts.Close)
	src := filepath.Join(t.TempDir(), "si.emd")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	c := &upload.Client{Endpoint: ts.URL + "/files/", Compress: upload.CompressAlways}
	ctx := context.Background()
	// The first upload tells the client that the server takes zstd.
	if _, err := c.Upload(ctx, src, "", map[string]string{upload.MetaFilename: "first.emd", upload.MetaSHA256: hex.EncodeToString(sum[:])}, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	u, err := c.Upload(ctx, src, "", map[string]string{upload.MetaFilename: "si.emd", upload.MetaSHA256: hex.EncodeToString(sum[:])}, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Wire*4 > st.Raw {
		t.Fatalf("sent %d bytes for %d: not compressed", st.Wire, st.Raw)
	}
	return srv, u[strings.LastIndex(u, "/")+1:]
}

// holdSyncs holds the background syncs scheduled from now until release
// is called (at the latest when the test ends; before a server's Close,
// which waits for them).
func holdSyncs(t *testing.T) (release func()) {
	ch := make(chan struct{})
	backgroundSyncHold.Store(&ch)
	var once sync.Once
	release = func() {
		once.Do(func() {
			backgroundSyncHold.Store(nil)
			close(ch)
		})
	}
	t.Cleanup(release)
	return release
}

// getLater calls srv.Get for id on a goroutine of its own; its error
// comes on the channel.
func getLater(srv *Server, id string) <-chan error {
	got := make(chan error, 1)
	go func() {
		_, err := srv.Get(context.Background(), id)
		got <- err
	}()
	return got
}

// TestJournalKeepsAnAnswerThroughLostWrites: a small compressed upload is
// answered once its body's journal is on disk, before its decoded bytes
// are synced; if those are lost (a power cut before the background sync,
// emulated by emptying the file), the server started again on the
// directory puts them back from the journal, byte for byte, and the
// SHA-256 computed on arrival still matches.
func TestJournalKeepsAnAnswerThroughLostWrites(t *testing.T) {
	release := holdSyncs(t)
	dir := t.TempDir()
	data := sparseCounts(700 << 10)
	srv, id := uploadCompressed(t, dir, data)
	defer func() {
		release()
		srv.Close()
	}()
	if _, err := os.Stat(srv.journalPath(id)); err != nil {
		t.Fatalf("answered without a journal while the file's sync is held: %v", err)
	}
	if err := os.Truncate(filepath.Join(dir, id), 0); err != nil {
		t.Fatal(err)
	}
	again, err := New(Config{Dir: dir, BasePath: "/files/"})
	if err != nil {
		t.Fatal(err)
	}
	// Put back at the start, before anyone asks for it.
	if fi, err := os.Stat(filepath.Join(dir, id)); err != nil || fi.Size() != int64(len(data)) {
		t.Fatalf("after the restart: %v, %v (want %d bytes)", fi, err, len(data))
	}
	up, err := again.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !up.Complete() {
		t.Fatalf("after the restart the upload has %d of %d bytes", up.Offset, up.Size)
	}
	got, _ := os.ReadFile(up.Path)
	if !bytes.Equal(got, data) {
		t.Fatal("the replayed file is not the bytes sent")
	}
	sum := sha256.Sum256(data)
	if d := again.Digest(up); d != hex.EncodeToString(sum[:]) {
		t.Fatalf("digest %q after the replay, want %x", d, sum)
	}
	if _, err := os.Stat(again.journalPath(id)); !os.IsNotExist(err) {
		t.Fatalf("the journal is left after its replay: %v", err)
	}
}

// TestReadersWaitForTheBackgroundSync: what takes an upload's bytes as
// final (Get, Digest, Remove) waits for the sync of a journalled PATCH,
// which then removes the journal.
func TestReadersWaitForTheBackgroundSync(t *testing.T) {
	release := holdSyncs(t)
	dir := t.TempDir()
	srv, id := uploadCompressed(t, dir, sparseCounts(300<<10))
	got := getLater(srv, id)
	select {
	case err := <-got:
		release()
		t.Fatalf("Get returned (%v) while the file's sync was held", err)
	case <-time.After(200 * time.Millisecond):
	}
	release()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(srv.journalPath(id)); !os.IsNotExist(err) {
		t.Fatalf("the journal is left after the sync: %v", err)
	}
	if err := srv.Remove(id); err != nil {
		t.Fatal(err)
	}
	srv.Close()
}

// TestJournalCutShortIsNotReplayed: a journal that does not decode to
// its length (a crash while it was written, before its PATCH was
// answered) leaves the file as it is.
func TestJournalCutShortIsNotReplayed(t *testing.T) {
	release := holdSyncs(t)
	dir := t.TempDir()
	data := sparseCounts(500 << 10)
	srv, id := uploadCompressed(t, dir, data)
	j, err := os.ReadFile(srv.journalPath(id))
	release()
	srv.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(srv.journalPath(id), j[:len(j)-40], 0o640); err != nil {
		t.Fatal(err)
	}
	stored := filepath.Join(dir, id)
	if err := os.Truncate(stored, 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Dir: dir, BasePath: "/files/"}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(stored); err != nil || fi.Size() != 1000 {
		t.Fatalf("the file after a cut journal: %v, %v (want it left at 1000 bytes)", fi, err)
	}
}

// TestNoJournalWhereReplicasShareTheDirectory: with a locker for
// replicas, a small compressed upload is synced before it is answered,
// as before the journal (another replica reads the shared file at once).
func TestNoJournalWhereReplicasShareTheDirectory(t *testing.T) {
	release := holdSyncs(t)
	dir := t.TempDir()
	srv, id := uploadCompressedTo(t, Config{Dir: dir, BasePath: "/files/", Locker: memorylocker.New()}, sparseCounts(300<<10))
	defer func() {
		release()
		srv.Close()
	}()
	if _, err := os.Stat(srv.journalPath(id)); !os.IsNotExist(err) {
		t.Fatalf("a journal where replicas share the directory: %v", err)
	}
	select {
	case err := <-getLater(srv, id):
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Get waits for a background sync where none should be")
	}
}

// TestJournalThatCannotBeReplayedLeavesTheServerUp: a journal whose file
// cannot be written at the start does not keep the server from serving;
// reading its upload says why, and the journal stays for another try.
func TestJournalThatCannotBeReplayedLeavesTheServerUp(t *testing.T) {
	release := holdSyncs(t)
	dir := t.TempDir()
	srv, id := uploadCompressed(t, dir, sparseCounts(300<<10))
	stored := filepath.Join(dir, id)
	if err := os.Rename(stored, stored+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(stored, 0o750); err != nil { // not writable as a file
		t.Fatal(err)
	}
	defer func() { // (the first server's sync, held as by a power cut)
		release()
		srv.Close()
	}()
	again, err := New(Config{Dir: dir, BasePath: "/files/"})
	if err != nil {
		t.Fatalf("the server did not start: %v", err)
	}
	if _, err := again.Get(context.Background(), id); err == nil || !strings.Contains(err.Error(), "replay journal") {
		t.Fatalf("Get: %v, want the replay's error", err)
	}
	if _, err := os.Stat(again.journalPath(id)); err != nil {
		t.Fatalf("the journal is gone: %v", err)
	}
}

// TestFailedBodyLeavesNoJournal: a small body worth a journal has it
// written while it is decoded; when the body then fails (it decodes to
// less than it declared, or a frame's checksum is wrong), the PATCH is
// refused and its journal removed, so no start or reader replays bytes
// that were never acknowledged.
func TestFailedBodyLeavesNoJournal(t *testing.T) {
	dir := t.TempDir()
	srv, err := New(Config{Dir: dir, BasePath: "/files/"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ts := httptest.NewServer(http.StripPrefix("/files/", srv.Handler()))
	defer ts.Close()
	data := sparseCounts(1 << 20)
	sum := sha256.Sum256(data)
	c := &upload.Client{Endpoint: ts.URL + "/files/"}
	u, err := c.Create(context.Background(), int64(len(data)), map[string]string{upload.MetaFilename: "x.emd", upload.MetaSHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		t.Fatal(err)
	}
	id := u[strings.LastIndex(u, "/")+1:]
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	whole := enc.EncodeAll(data, nil)
	corrupt := bytes.Clone(whole)
	corrupt[len(corrupt)-2] ^= 0xff // the frame's checksum
	for _, tc := range []struct {
		name     string
		declared int
		body     []byte
	}{
		{"decodes to less than declared", len(data), enc.EncodeAll(data[:len(data)/2], nil)},
		{"checksum wrong", len(data), corrupt},
	} {
		if len(tc.body)*journalGain > tc.declared {
			t.Fatalf("%s: a body of %d bytes for %d is not one worth a journal", tc.name, len(tc.body), tc.declared)
		}
		off, err := c.Offset(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPatch, u, bytes.NewReader(tc.body))
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		req.Header.Set("Upload-Offset", strconv.FormatInt(off, 10))
		req.Header.Set("Content-Encoding", "zstd")
		req.Header.Set(upload.HeaderDecodedLength, strconv.Itoa(tc.declared-int(off)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: status %d, want 400", tc.name, resp.StatusCode)
		}
		if _, err := os.Stat(srv.journalPath(id)); !os.IsNotExist(err) {
			t.Fatalf("%s: the journal of a refused body is left: %v", tc.name, err)
		}
		// Start over for the next case.
		if err := os.Truncate(filepath.Join(dir, id), 0); err != nil {
			t.Fatal(err)
		}
	}
}

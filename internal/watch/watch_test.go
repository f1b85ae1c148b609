package watch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func next(t *testing.T, w *Watcher, within time.Duration) (File, bool) {
	t.Helper()
	select {
	case f := <-w.Files():
		return f, true
	case <-time.After(within):
		return File{}, false
	}
}

func TestSettledFilesOnceEach(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A file written before start is found by the first scan.
	os.WriteFile(filepath.Join(dir, "before.emd"), []byte("x"), 0o644)
	w := New(Config{Dirs: []string{dir}, Settle: 150 * time.Millisecond, Rescan: time.Hour,
		Match: func(p string) bool { return strings.HasSuffix(p, ".emd") }})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	f, ok := next(t, w, 3*time.Second)
	if !ok || filepath.Base(f.Path) != "before.emd" {
		t.Fatalf("first file: %+v %v", f, ok)
	}
	// A file growing in steps is reported once, after it stops growing, at
	// its final size; a non-matching file never; a new subfolder is followed.
	sub := filepath.Join(dir, "session1")
	os.Mkdir(sub, 0o755)
	time.Sleep(50 * time.Millisecond) // let the watch on the new folder be added
	p := filepath.Join(sub, "grow.emd")
	fh, _ := os.Create(p)
	for range 5 {
		fh.Write(make([]byte, 1000))
		time.Sleep(60 * time.Millisecond)
	}
	fh.Close()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644)
	f, ok = next(t, w, 3*time.Second)
	if !ok || f.Path != p || f.Size != 5000 {
		t.Fatalf("grown file: %+v %v", f, ok)
	}
	if f, ok := next(t, w, 500*time.Millisecond); ok {
		t.Fatalf("unexpected second report: %+v", f)
	}
	// Rewritten with new content: reported again.
	os.WriteFile(p, make([]byte, 7000), 0o644)
	f, ok = next(t, w, 3*time.Second)
	if !ok || f.Size != 7000 {
		t.Fatalf("rewritten file: %+v %v", f, ok)
	}
}

func TestRescanFindsFilesWithoutEvents(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := New(Config{Dirs: []string{dir}, Settle: 50 * time.Millisecond, Rescan: 100 * time.Millisecond})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// Simulate lost events: remove the fsnotify watch, then write.
	w.fsw.Remove(dir)
	os.WriteFile(filepath.Join(dir, "quiet.emd"), []byte("abc"), 0o644)
	if f, ok := next(t, w, 3*time.Second); !ok || filepath.Base(f.Path) != "quiet.emd" {
		t.Fatalf("rescan: %+v %v", f, ok)
	}
}

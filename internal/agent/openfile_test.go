//go:build linux || windows

package agent

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOpenForWrite: a file is busy while a handle writes to it, and not
// once that is closed or when it is only read.
func TestOpenForWrite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "si.emd")
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("HDF")
	if !openForWrite(path) {
		t.Error("a file open for writing is not seen as busy")
	}
	w.Close()
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if openForWrite(path) {
		t.Error("a file open only for reading is seen as busy")
	}
	if openForWrite(filepath.Join(t.TempDir(), "missing.emd")) {
		t.Error("a missing file is seen as busy")
	}
}

package checksum_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/picoflow/picoflow/internal/checksum"
)

func TestFile(t *testing.T) {
	t.Parallel()
	b := make([]byte, 3<<20+17)
	for i := range b {
		b[i] = byte(i * 7)
	}
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, b, 0o644)
	sum, n, err := checksum.File(context.Background(), p)
	want := sha256.Sum256(b)
	if err != nil || n != int64(len(b)) || sum != hex.EncodeToString(want[:]) {
		t.Fatalf("%s %d %v", sum, n, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := checksum.File(ctx, p); err == nil {
		t.Fatal("cancelled context: no error")
	}
}

package superblock_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/picoflow/picoflow/internal/emd/emdtest"
	"github.com/picoflow/picoflow/internal/emd/superblock"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"velox/example_fei_emd_si.emd", "velox/velox11_test_SI_16x16_215kx.emd", "berkeley/Acquisition_18.emd"} {
		p := emdtest.File(t, name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		sb, err := superblock.Check(p, fi.Size())
		if err != nil || sb.EOF != fi.Size() {
			t.Errorf("%s: %v, EOF %d size %d", name, err, sb.EOF, fi.Size())
		}
		b, _ := os.ReadFile(p)
		cut := filepath.Join(dir, "cut.emd")
		os.WriteFile(cut, b[:len(b)-1], 0o644)
		if _, err := superblock.Check(cut, int64(len(b)-1)); !errors.Is(err, superblock.ErrIncomplete) {
			t.Errorf("%s less one byte: %v, want ErrIncomplete", name, err)
		}
	}
	txt := filepath.Join(dir, "a.txt")
	os.WriteFile(txt, []byte("not hdf5 at all, but long enough to be read"), 0o644)
	if _, err := superblock.Check(txt, 44); !errors.Is(err, superblock.ErrFormat) {
		t.Errorf("text file: %v, want ErrFormat", err)
	}
}

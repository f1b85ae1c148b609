package emd

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/picoflow/picoflow/internal/emd/emdtest"
)

// TestRandomMutations flips random bytes of real files (a fixed seed, so the
// run is repeatable) and requires a clean, classified outcome every time.
func TestRandomMutations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := rand.New(rand.NewSource(1))
	for _, name := range []string{"velox/example_fei_emd_si.emd", "velox/fei_example_tem_stack.emd", "berkeley/Acquisition_18.emd"} {
		src, err := os.ReadFile(emdtest.File(t, name))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < mutations; i++ {
			d := append([]byte(nil), src...)
			for k := 0; k < 1+r.Intn(8); k++ {
				// Bias towards the metadata at the front of the file.
				pos := r.Intn(len(d))
				if k%2 == 0 {
					pos = r.Intn(min(len(d), 8192))
				}
				d[pos] ^= byte(r.Intn(255) + 1)
			}
			p := filepath.Join(dir, "m.emd")
			if err := os.WriteFile(p, d, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(context.Background(), p, Options{MaxElements: 1 << 22})
			if err == nil {
				err = readAllSignals(f)
				f.Close()
			}
			if err != nil && !classified(err) {
				t.Errorf("%s mutation %d: unclassified error %v", name, i, err)
			}
		}
	}
}

// mutations per file; raise it locally for a longer soak.
var mutations = envInt("PICOFLOW_MUTATIONS", 150)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

package emd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/emd/emdtest"
	"github.com/picoflow/picoflow/internal/sandbox"
)

var workers = sandbox.NewRegistry()

func registerWorkers() {
	workers.Register("emd.readall", func(ctx context.Context, raw json.RawMessage) (any, error) {
		var path string
		if err := json.Unmarshal(raw, &path); err != nil {
			return nil, err
		}
		f, err := Open(ctx, path, Options{MaxElements: 1 << 22})
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return len(f.Signals), readAllSignals(f)
	})
	workers.RegisterError("format", ErrFormat)
	workers.RegisterError("not_found", ErrNotFound)
	workers.RegisterError("too_large", ErrTooLarge)
	workers.RegisterError("unsupported", ErrUnsupported)
}

func TestMain(m *testing.M) {
	registerWorkers()
	workers.Main()
	os.Exit(m.Run())
}

// TestIsolatedMutations is the soak that in-process tests cannot run: some
// damaged files make the HDF5 layer allocate terabytes, which no recover
// can catch. Each mutated file is read in a child process under a 1 GiB
// limit; every outcome must be a classified error, success or a contained
// out-of-memory, and the test process must survive them all.
func TestIsolatedMutations(t *testing.T) {
	t.Parallel()
	n := envInt("PICOFLOW_ISOLATED_MUTATIONS", 60)
	dir := t.TempDir()
	oom := 0
	for _, name := range mutationFiles {
		src, err := os.ReadFile(emdtest.File(t, name))
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			err := readMutated(t, dir, src, int64(i))
			switch {
			case err == nil, classified(err):
			case errors.Is(err, sandbox.ErrOutOfMemory):
				oom++
				t.Logf("%s mutation %d: contained: %v", name, i, err)
			default:
				t.Errorf("%s mutation %d: %v", name, i, err)
			}
		}
	}
	t.Logf("%d of %d mutations ran out of memory in the child", oom, 3*n)
}

var mutationFiles = []string{"velox/example_fei_emd_si.emd", "velox/fei_example_tem_stack.emd", "berkeley/Acquisition_18.emd"}

// mutate flips up to 8 bytes of the first 8 KiB, as chosen by seed.
func mutate(src []byte, seed int64) []byte {
	r := rand.New(rand.NewSource(seed))
	d := append([]byte(nil), src...)
	for k := 0; k < 1+r.Intn(8); k++ {
		pos := r.Intn(min(len(d), 8192))
		d[pos] ^= byte(r.Intn(255) + 1)
	}
	return d
}

// readMutated reads a mutated copy of src in a child under a 1 GiB limit.
func readMutated(t *testing.T, dir string, src []byte, seed int64) error {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("m%d.emd", seed))
	if err := os.WriteFile(p, mutate(src, seed), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	return workers.Run(context.Background(), "emd.readall", p, nil, sandbox.Limits{Memory: 1 << 30, Timeout: 30 * time.Second})
}

// TestKnownAllocationBombsAreContained pins two mutations found by the soak
// (PICOFLOW_ISOLATED_MUTATIONS=1000) that make the HDF5 library try to
// allocate more than 1 GiB while opening the file: read in-process they
// would kill the process; in a child they fail one read.
func TestKnownAllocationBombsAreContained(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		seed int64
	}{{"velox/example_fei_emd_si.emd", 275}, {"berkeley/Acquisition_18.emd", 943}} {
		src, err := os.ReadFile(emdtest.File(t, tc.name))
		if err != nil {
			t.Fatal(err)
		}
		if err := readMutated(t, dir, src, tc.seed); !errors.Is(err, sandbox.ErrOutOfMemory) {
			t.Errorf("%s seed %d: %v, want a contained ErrOutOfMemory", tc.name, tc.seed, err)
		}
	}
}

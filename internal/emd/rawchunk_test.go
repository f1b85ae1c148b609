package emd_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/picoflow/picoflow/internal/emd"
	"github.com/picoflow/picoflow/internal/emd/emdtest"
	"github.com/picoflow/picoflow/internal/simulate"
)

// TestRawChunkReaderMatchesLibrary checks the SpectrumStream fast path
// against the general HDF5 library on real Velox files (written by Velox
// and by the HDF5 C library) and on a simulated file (written by the Go
// writer), and that the fast path is really taken on each.
func TestRawChunkReaderMatchesLibrary(t *testing.T) {
	sim := filepath.Join(t.TempDir(), "sim.emd")
	if _, err := simulate.WriteSpectrumImage(context.Background(), sim, simulate.SpectrumImageSpec{
		Width: 24, Height: 20, Elements: []string{"Fe", "Cu"}, Seed: 5, CountsPerPixel: 400,
	}); err != nil {
		t.Fatal(err)
	}
	files := []string{
		emdtest.File(t, "velox/example_fei_emd_si.emd"),
		emdtest.File(t, "velox/velox11_test_SI_16x16_215kx.emd"),
		sim,
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := emd.Open(context.Background(), path, emd.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			s, err := f.Signal(emd.KindSpectrumImage)
			if err != nil {
				t.Fatal(err)
			}
			paths := emd.StreamPaths(s)
			if len(paths) == 0 {
				t.Fatal("no streams")
			}
			for _, p := range paths {
				fast, lib, err := emd.ReadBothWays(f, p)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				if len(fast) == 0 || !slices.Equal(fast, lib) {
					t.Fatalf("%s: fast path (%d values) differs from library (%d values)", p, len(fast), len(lib))
				}
				gates := 0
				for _, v := range fast {
					if v == 65535 {
						gates++
					}
				}
				if gates == 0 {
					t.Errorf("%s: no pixel gates in %d values", p, len(fast))
				}
			}
		})
	}
}

package emd_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/picoflow/picoflow/internal/emd"
	"github.com/picoflow/picoflow/internal/emd/emdtest"
)

// TestManyGroups: a file whose groups have hundreds of members (one group
// per frame or position, as acquisition software writes them) keeps its
// group index in a B-tree with internal nodes. Written by h5py in HDF5's
// original format (what libver="earliest", h5py's default, produces),
// every member is found and read.
func TestManyGroups(t *testing.T) {
	t.Parallel()
	const n = 600
	path := filepath.Join(t.TempDir(), "many.emd")
	script := `
import sys, h5py, numpy as np
n = int(sys.argv[2])
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["version_major"] = 0
    f.attrs["version_minor"] = 2
    d = f.create_group("data")
    for i in range(n):
        g = d.create_group("pos%04d" % i)
        g.attrs["emd_group_type"] = 1
        g.create_dataset("data", data=np.full((4, 5), i, dtype="uint16"))
        g.create_dataset("dim1", data=np.arange(4) * 0.5)
        g.create_dataset("dim2", data=np.arange(5) * 0.5)
`
	emdtest.H5py(t, script, path, "600")
	f, err := emd.Open(context.Background(), path, emd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(f.Signals) != n {
		t.Fatalf("%d signals, want %d", len(f.Signals), n)
	}
	seen := map[string]bool{}
	for i := range f.Signals {
		s := &f.Signals[i]
		seen[s.Title] = true
		if s.Title != "pos0000" && s.Title != "pos0317" && s.Title != "pos0599" {
			continue
		}
		v, err := f.ReadData(context.Background(), s)
		if err != nil || len(v) != 20 {
			t.Fatalf("%s: %d values, %v", s.Title, len(v), err)
		}
		var want float64
		switch s.Title {
		case "pos0317":
			want = 317
		case "pos0599":
			want = 599
		}
		if v[0] != want || v[19] != want {
			t.Errorf("%s holds %v, want all %v", s.Title, v, want)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct signals, want %d", len(seen), n)
	}
}

// TestComplexDataIsNamed: complex data (a compound of two floats, as h5py
// and Velox write FFTs) is reported as unsupported complex data, not as a
// malformed file.
func TestComplexDataIsNamed(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "fft.emd")
	script := `
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["version_major"] = 0
    f.attrs["version_minor"] = 2
    g = f.create_group("data/fft")
    g.attrs["emd_group_type"] = 1
    g.create_dataset("data", data=(np.arange(16) + 1j * np.arange(16)).reshape(4, 4).astype(np.complex64))
    g.create_dataset("dim1", data=np.arange(4.0))
    g.create_dataset("dim2", data=np.arange(4.0))
`
	emdtest.H5py(t, script, path)
	f, err := emd.Open(context.Background(), path, emd.Options{})
	if err == nil {
		defer f.Close()
		_, err = f.ReadData(context.Background(), &f.Signals[0])
	}
	if !errors.Is(err, emd.ErrUnsupported) || !strings.Contains(err.Error(), "unsupported complex data") {
		t.Fatalf("complex data: %v", err)
	}
}

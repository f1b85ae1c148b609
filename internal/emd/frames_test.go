package emd_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/picoflow/picoflow/internal/emd"
	"github.com/picoflow/picoflow/internal/emd/emdtest"
	"github.com/picoflow/picoflow/internal/simulate"
)

// TestFrameReaderMatchesReadFrame compares the chunk fast path with the
// general reader frame by frame, on a simulated movie and on real stacks.
func TestFrameReaderMatchesReadFrame(t *testing.T) {
	t.Parallel()
	sim := filepath.Join(t.TempDir(), "movie.emd")
	if _, err := simulate.WriteMovie(context.Background(), sim, simulate.MovieSpec{Frames: 7, Width: 40, Height: 30, Particles: 3, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{sim, emdtest.File(t, "velox/fei_example_tem_stack.emd"), emdtest.File(t, "velox/example_fei_emd_image.emd")} {
		f, err := emd.Open(context.Background(), path, emd.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range f.Signals {
			s := &f.Signals[i]
			if s.Kind != emd.KindImage && s.Kind != emd.KindImageStack {
				continue
			}
			fr, err := f.Frames(context.Background(), s)
			if err != nil {
				t.Fatalf("%s %s: %v", filepath.Base(path), s.Title, err)
			}
			if path == sim && !emd.FastFrames(fr) {
				t.Errorf("simulated movie: fast path not taken")
			}
			buf := make([]float64, fr.H*fr.W)
			for k := range fr.Frames {
				if err := fr.Read(context.Background(), k, buf); err != nil {
					t.Fatal(err)
				}
				want, err := f.ReadFrame(context.Background(), s, k)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(buf, want) {
					t.Fatalf("%s %s frame %d differs", filepath.Base(path), s.Title, k)
				}
			}
			fr.Close()
		}
		f.Close()
	}
}

// TestBerkeleyStackFrames: a Berkeley (NCEM) time series, stored as
// (T, H, W) with a first axis named "time", is read frame by frame (frame 0
// was the whole series, and later frames none: a movie written with ncempy
// or h5py failed its analysis).
func TestBerkeleyStackFrames(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "series.emd")
	emdtest.BerkeleySeries(t, path, `
t, y, x = np.mgrid[0:4, 0:5, 0:7]
data = (1000 * t + 10 * y + x).astype("uint16")
`, 0.5, 0.2)
	f, err := emd.Open(context.Background(), path, emd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := f.Signal(emd.KindImageStack)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := f.Frames(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	if fr.Frames != 4 || fr.H != 5 || fr.W != 7 {
		t.Fatalf("%d frames of %d×%d; want 4 of 5×7", fr.Frames, fr.H, fr.W)
	}
	buf := make([]float64, 5*7)
	for k := range 4 {
		if err := fr.Read(context.Background(), k, buf); err != nil {
			t.Fatal(err)
		}
		for y := range 5 {
			for x := range 7 {
				if want := float64(1000*k + 10*y + x); buf[y*7+x] != want {
					t.Fatalf("frame %d at (%d, %d): %g, want %g", k, y, x, buf[y*7+x], want)
				}
			}
		}
	}
	if _, err := f.ReadFrame(context.Background(), s, 4); !errors.Is(err, emd.ErrNotFound) {
		t.Errorf("frame 4 of 4: %v, want ErrNotFound", err)
	}
}

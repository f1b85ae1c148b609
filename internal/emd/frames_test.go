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

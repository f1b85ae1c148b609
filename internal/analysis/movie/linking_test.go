package movie_test

import (
	"testing"

	"github.com/picoflow/picoflow/internal/analysis/movie"
)

// gapped follows a still field through frames 0-7, a gap of 12 frames
// and frames 20-27, with before in the first frames and after in the
// last, finishes the tracking and returns the detections by frame.
func gapped(before, after []movie.Detection) [][]movie.Detection {
	tr := &movie.Tracker{Width: 200, Height: 200}
	frame := stillField(tr)
	var all [][]movie.Detection
	for f := range 28 {
		switch {
		case f < 8:
			all = append(all, frame(f, before...))
		case f < 20:
			all = append(all, frame(f))
		default:
			all = append(all, frame(f, after...))
		}
	}
	tr.Finish(all)
	return all
}

// TestGapClosedForParticleMeasuredSmaller: a particle lost for 12 frames
// and found again where it was, measured a third as large (a faint raft
// whose outline the noise cuts), is the same particle: its two tracks are
// joined (they were left apart when the sizes at the two ends differed
// more than 1.5-fold: 5 switches over the 28 movies).
func TestGapClosedForParticleMeasuredSmaller(t *testing.T) {
	t.Parallel()
	all := gapped([]movie.Detection{disc(100, 100, 6)}, []movie.Detection{disc(102.5, 101.5, 2)})
	if before, after := all[7][0].Track, all[20][0].Track; before != after {
		t.Fatalf("track %d before the gap, %d after; want one track", before, after)
	}
}

// TestGapClosedOnParticleOfItsSize: of two tracks that ended within
// reach of one that begins after a gap, the one whose particle was about
// as large is joined, even a little farther.
func TestGapClosedOnParticleOfItsSize(t *testing.T) {
	t.Parallel()
	all := gapped([]movie.Detection{disc(100, 100, 6), disc(106, 100, 2)}, []movie.Detection{disc(103.5, 100, 6)})
	if like, small, after := all[7][0].Track, all[7][1].Track, all[20][0].Track; after != like {
		t.Fatalf("the particle after the gap is on track %d; want %d, as large (not %d, nearer, a third as large)", after, like, small)
	}
}

package movie_test

import (
	"math"
	"slices"
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

// eventsOf follows a still field through 30 frames in which a particle
// at (100, 100) is seen in the frames of seen, its diameter from..to px
// across them, finishes the tracking and returns the events of type typ.
func eventsOf(typ string, seen []int, from, to float64) []movie.Event {
	tr := &movie.Tracker{Width: 200, Height: 200}
	frame := stillField(tr)
	var all [][]movie.Detection
	for f := range 30 {
		var near []movie.Detection
		if i := slices.Index(seen, f); i >= 0 {
			near = append(near, disc(100, 100, from+(to-from)*float64(i)/float64(len(seen))))
		}
		all = append(all, frame(f, near...))
	}
	tr.Finish(all)
	return ofType(tr.Events, typ)
}

// ofType are the events of type typ.
func ofType(events []movie.Event, typ string) []movie.Event {
	var got []movie.Event
	for _, e := range events {
		if e.Type == typ {
			got = append(got, e)
		}
	}
	return got
}

// framesOf lists the frames from..to-1 but those in skip.
func framesOf(from, to int, skip ...int) []int {
	var f []int
	for k := from; k < to; k++ {
		if !slices.Contains(skip, k) {
			f = append(f, k)
		}
	}
	return f
}

// nucleations: a particle growing from 3 to 6 px.
func nucleations(seen []int) []movie.Event { return eventsOf("nucleation", seen, 3, 6) }

// dissolutions: a particle shrinking from 6 to 3 px.
func dissolutions(seen []int) []movie.Event { return eventsOf("dissolution", seen, 6, 3) }

// TestNucleationSeenSteadily: a particle that appears and grows, seen in
// every frame from its first, nucleated there; one that first appears in
// frame 1 (missed in the first frame, as far as anyone can tell), or one
// seen in 2 of its first 4 frames (a faint particle the noise lets
// through now and then), is not claimed as a nucleus.
func TestNucleationSeenSteadily(t *testing.T) {
	t.Parallel()
	from := func(first int, skip ...int) []int { return framesOf(first, 30, skip...) }
	if got := nucleations(from(10)); len(got) != 1 || got[0].Frame != 10 {
		t.Errorf("a particle seen from frame 10 on, growing: nucleations %+v; want one in frame 10", got)
	}
	if got := nucleations(from(10, 12)); len(got) != 1 {
		t.Errorf("a particle seen from frame 10 on but in frame 12: nucleations %+v; want one", got)
	}
	if got := nucleations(from(1)); len(got) != 0 {
		t.Errorf("a particle seen from frame 1 on: nucleations %+v; want none", got)
	}
	if got := nucleations(from(10, 11, 12)); len(got) != 0 {
		t.Errorf("a particle seen in frame 10, then from 13 on: nucleations %+v; want none", got)
	}
}

// TestDissolutionSeenGone: a particle followed for 20 frames that is gone
// from frame 20 on dissolved there; one gone only for the last 3 frames
// (a gap the tracker bridges: it may only have been missed), or followed
// for 4 frames only, is not claimed to have dissolved.
func TestDissolutionSeenGone(t *testing.T) {
	t.Parallel()
	span := func(from, to int) []int { return framesOf(from, to) }
	if got := dissolutions(span(0, 20)); len(got) != 1 || got[0].Frame != 20 {
		t.Errorf("a particle seen in frames 0-19: dissolutions %+v; want one in frame 20", got)
	}
	if got := dissolutions(span(0, 27)); len(got) != 0 {
		t.Errorf("a particle seen in frames 0-26 of 30: dissolutions %+v; want none", got)
	}
	if got := dissolutions(span(10, 14)); len(got) != 0 {
		t.Errorf("a particle seen in frames 10-13: dissolutions %+v; want none", got)
	}
}

// TestHiddenParticleGetsShareOfBlob: of two touching particles (d 6 and
// 8.7 px, 6 px apart) seen as one round blob for two frames, which the
// smaller one's track took, the larger one's track, seen before and after,
// gets its share of the blob where it was (a track that found nothing
// there had the truth's larger particle given to its neighbour's track
// and back: two switches), and the other share moves off the blob's centre
// to the far side; the blob's area is shared, not made twice.
func TestHiddenParticleGetsShareOfBlob(t *testing.T) {
	t.Parallel()
	tr := &movie.Tracker{Width: 200, Height: 200}
	frame := stillField(tr)
	blob := disc(112.3, 100, 9.1)
	blob.Elongation = 1.2
	var all [][]movie.Detection
	for f := range 16 {
		if f == 10 || f == 11 {
			all = append(all, frame(f, blob))
			continue
		}
		all = append(all, frame(f, disc(109.5, 100, 6), disc(115.5, 100, 8.7)))
	}
	small, large := all[9][0].Track, all[9][1].Track
	if took := all[10][0].Track; took != small {
		t.Fatalf("the blob went to track %d; the test wants the smaller particle's track %d to take it", took, small)
	}
	tr.Finish(all)
	for _, f := range []int{10, 11} {
		var a, b *movie.Detection
		for j := range all[f] {
			switch all[f][j].Track {
			case small:
				a = &all[f][j]
			case large:
				b = &all[f][j]
			}
		}
		if a == nil || b == nil {
			t.Fatalf("frame %d: small %v, large %v; want both", f, a != nil, b != nil)
		}
		if math.Abs(b.X-115.5) > 0.1 || math.Abs(b.Y-100) > 0.1 {
			t.Errorf("frame %d: the hidden particle's share at (%.2f, %.2f); want (115.5, 100), where it was", f, b.X, b.Y)
		}
		if a.X >= blob.X || b.X-a.X > (6+8.7)/2+1e-9 {
			t.Errorf("frame %d: the other share at x %.2f; want left of the blob's centre %.1f, within %.2f px of the hidden one's", f, a.X, blob.X, (6+8.7)/2)
		}
		if sum := a.AreaPx + b.AreaPx; math.Abs(sum-blob.AreaPx) > 1e-9 || b.AreaPx <= a.AreaPx {
			t.Errorf("frame %d: shares of %.1f and %.1f px²; want the blob's %.1f, the larger particle's share larger", f, a.AreaPx, b.AreaPx, blob.AreaPx)
		}
	}
}

// TestFaintParticleMergesWhenNeighbourGrows: a faint particle touching a
// bright one vanishes into its blob four frames before the two are one
// (the bright one's blob, round, grows from 7 to 8.2 px then): that is a
// merge of the faint into the bright, in the frame the blob grew, not a
// dissolution where the faint one was last seen (those went down as
// dissolutions beside the merge the simulator made).
func TestFaintParticleMergesWhenNeighbourGrows(t *testing.T) {
	t.Parallel()
	tr := &movie.Tracker{Width: 200, Height: 200}
	frame := stillField(tr)
	var all [][]movie.Detection
	for f := range 30 {
		switch {
		case f < 12:
			all = append(all, frame(f, disc(100, 100, 7), disc(106.5, 100, 6)))
		case f < 16:
			all = append(all, frame(f, disc(100.5, 100, 7)))
		default:
			all = append(all, frame(f, disc(103, 100, 8.2)))
		}
	}
	tr.Finish(all)
	bright, faint := all[11][0].Track, all[11][1].Track
	merges, dissolutions := ofType(tr.Events, "merge"), ofType(tr.Events, "dissolution")
	if len(merges) != 1 || merges[0].Gone != faint || merges[0].Into != bright || merges[0].Frame != 16 {
		t.Errorf("merges %+v; want track %d into %d in frame 16", merges, faint, bright)
	}
	if len(dissolutions) != 0 {
		t.Errorf("dissolutions %+v; want none", dissolutions)
	}
}

package movie

import (
	"math"
	"testing"
)

// partedScene is a still field of 40 frames in which a small particle P
// (5 px, at x 108) and a large one Q (8 px, at x 100) touch: both are
// seen apart in frames 0-9, as one blob of elongation blobElongation in
// frames 10-19, and apart again from frame 20, where the blob's track
// follows the piece at pieceX and a new track begins on the other piece.
// Track 0 followed P until it vanished into the blob, track 1 followed Q
// and the blob, track 2 is the new one.
func partedScene(blobElongation, pieceX float64) (*Tracker, [][]Detection) {
	const frames = 40
	t := &Tracker{Width: 200, Height: 200, path: make([][2]float64, frames)}
	g, s, n := &Track{ID: 0}, &Track{ID: 1}, &Track{ID: 2}
	dets := make([][]Detection, frames)
	at := func(tr *Track, f int, x, d, e float64) {
		tr.Points = append(tr.Points, TrackPoint{Frame: f, X: x, Y: 100, DiameterPx: d, Elongation: e})
		dets[f] = append(dets[f], Detection{X: x, Y: 100, DiameterPx: d, Elongation: e, Track: tr.ID})
	}
	otherX, otherD, pieceD := 100.0, 8.0, 5.0
	if pieceX < 104 {
		otherX, otherD, pieceD = 108, 5, 8
	}
	for f := range frames {
		switch {
		case f < 10:
			at(g, f, 108, 5, 1.05)
			at(s, f, 100, 8, 1.05)
		case f < 20:
			at(s, f, 103, 11, blobElongation)
		default:
			at(s, f, pieceX, pieceD, 1.05)
			at(n, f, otherX, otherD, 1.05)
		}
	}
	t.All = []*Track{g, s, n}
	return t, dets
}

// xAt is where track tr is in frame f (NaN: not there).
func xAt(tr *Track, f int) float64 {
	if p, ok := pointAt(tr, f); ok {
		return p.X
	}
	return math.NaN()
}

// TestPartAgainCrossesWhereTheBlobTrackTookTheOtherPiece: the blob's
// track followed the small particle's piece when the pair parted, a new
// track the large one's: the vanished track of the small particle takes
// the blob track's tail, the blob's track (the large particle's) the new
// one's, in the tracks and the detections alike.
func TestPartAgainCrossesWhereTheBlobTrackTookTheOtherPiece(t *testing.T) {
	t.Parallel()
	tr, dets := partedScene(1.7, 108)
	dead := make([]bool, len(tr.All))
	tr.partAgain(dets, dead)
	g, s := tr.All[0], tr.All[1]
	if x := xAt(g, 30); x != 108 {
		t.Errorf("the small particle's track in frame 30 at x %v; want 108 (its particle)", x)
	}
	if x := xAt(s, 30); x != 100 {
		t.Errorf("the large particle's track in frame 30 at x %v; want 100 (its particle)", x)
	}
	if x := xAt(s, 15); x != 103 {
		t.Errorf("the large particle's track lost its blob: frame 15 at x %v; want 103", x)
	}
	if !dead[2] {
		t.Error("the new track is still live; want it taken into the large particle's track")
	}
	for _, d := range dets[30] {
		if want := map[float64]int{108: 0, 100: 1}[d.X]; d.Track != want {
			t.Errorf("frame 30: the detection at x %v is on track %d; want %d", d.X, d.Track, want)
		}
	}
}

// TestPartAgainLeavesTheStraightReading: where the blob's track followed
// its own particle's piece, nothing is changed.
func TestPartAgainLeavesTheStraightReading(t *testing.T) {
	t.Parallel()
	leavesAlone(t, 1.7, 100)
}

// TestPartAgainLeavesACoalescence: a blob round in the frames between was
// a coalescence; the particle beside it later is another one, and the
// tracks are left as they are.
func TestPartAgainLeavesACoalescence(t *testing.T) {
	t.Parallel()
	leavesAlone(t, 1.1, 108)
}

// leavesAlone checks that partAgain changes nothing in the scene of
// partedScene(blobElongation, pieceX): the blob's track stays on the
// piece at pieceX, the new track is not taken, the vanished track keeps
// its 10 points.
func leavesAlone(t *testing.T, blobElongation, pieceX float64) {
	t.Helper()
	tr, dets := partedScene(blobElongation, pieceX)
	dead := make([]bool, len(tr.All))
	tr.partAgain(dets, dead)
	if x := xAt(tr.All[1], 30); x != pieceX || dead[2] || len(tr.All[0].Points) != 10 {
		t.Errorf("the blob's track in frame 30 at x %v, the new track taken %v, the vanished track %d points; want %v, false, 10", x, dead[2], len(tr.All[0].Points), pieceX)
	}
}

package movie

import (
	"math"
	"testing"
)

// TestShareNotOnParticleSeenApart: a track that finds nothing beside a blob
// is not given a share of it that would lie on a particle detected apart
// (the tracks' positions across the blob's axis put the share at the far
// end, onto that particle: a duplicate, which two tracks then took turns
// at for frames).
func TestShareNotOnParticleSeenApart(t *testing.T) {
	t.Parallel()
	tr := &Tracker{Width: 200, Height: 200}
	c := Detection{X: 92, Y: 100, DiameterPx: 6, AreaPx: 28, Elongation: 1}
	frame := func(f int, near ...Detection) []Detection {
		dets := append([]Detection{c}, near...)
		for k := range 4 {
			dets = append(dets, Detection{X: 30 + 40*float64(k), Y: 30, DiameterPx: 6, Elongation: 1})
		}
		return tr.Update(f, dets)
	}
	for f := range 3 {
		frame(f, Detection{X: 104, Y: 100, DiameterPx: 9, AreaPx: 64, Elongation: 1}, Detection{X: 103, Y: 95, DiameterPx: 5, AreaPx: 20, Elongation: 1})
	}
	// The blob along x, its second moment that of two discs 10 px apart.
	dets := frame(3, Detection{X: 102, Y: 100, DiameterPx: 11, AreaPx: 95, Intensity: 950, Elongation: 1.9, long: 22.9, ax: 1})
	own := dets[0].Track
	for _, d := range dets {
		if d.Track != own && math.Hypot(d.X-c.X, d.Y-c.Y) < c.DiameterPx/2 {
			t.Fatalf("track %d was given a share at (%.1f, %.1f), on the particle track %d sees apart", d.Track, d.X, d.Y, own)
		}
	}
}

package movie_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/picoflow/picoflow/internal/analysis/movie"
	"github.com/picoflow/picoflow/internal/emd"
	"github.com/picoflow/picoflow/internal/simulate"
)

// simulated writes a movie and opens its frames.
func simulated(t testing.TB, spec simulate.MovieSpec) (*emd.FrameReader, *simulate.MovieTruth, func()) {
	path := filepath.Join(t.TempDir(), "movie.emd")
	truth, err := simulate.WriteMovie(context.Background(), path, spec)
	if err != nil {
		t.Fatal(err)
	}
	f, err := emd.Open(context.Background(), path, emd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Signal(emd.KindImageStack)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := f.Frames(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return fr, truth, func() { fr.Close(); f.Close() }
}

func truthBoxes(tr *simulate.MovieTruth) [][]movie.Box {
	out := make([][]movie.Box, tr.Frames)
	for _, track := range tr.Tracks {
		for f := range tr.Frames {
			if track.On[f] {
				out[f] = append(out[f], movie.Box{X: track.X[f], Y: track.Y[f], W: 4 * tr.Sigma, H: 4 * tr.Sigma})
			}
		}
	}
	return out
}

// TestDetectionAccuracy: on synthetic movies with moving, touching and
// appearing particles in noise, the classical detector finds them with
// precision and recall of at least 0.95.
func TestDetectionAccuracy(t *testing.T) {
	t.Parallel()
	specs := []simulate.MovieSpec{
		{Frames: 40, Width: 256, Height: 256, Particles: 24, Seed: 1},
		{Frames: 40, Width: 256, Height: 256, Particles: 24, Seed: 2},
		{Frames: 40, Width: 256, Height: 256, Particles: 24, Seed: 3},
		// Sparse: particles cover a tiny part of a large frame, so the
		// histogram is all noise (Otsu alone would split the noise).
		{Frames: 10, Width: 768, Height: 768, Particles: 8, Seed: 4},
	}
	for _, spec := range specs {
		seed := spec.Seed
		fr, truth, done := simulated(t, spec)
		res, err := movie.Analyze(context.Background(), fr, fr.Frames, fr.H, fr.W, t.TempDir(), movie.Options{NoVideo: true})
		done()
		if err != nil {
			t.Fatal(err)
		}
		s := movie.Evaluate(res.Detections, truthBoxes(truth), 3)
		t.Logf("seed %d: precision %.3f recall %.3f mAP50 %.3f mAP50-95 %.3f centre error %.2f px (TP %d FP %d FN %d), %d tracks for %d particles",
			seed, s.Precision, s.Recall, s.MAP50, s.MAP50to95, s.MeanCentreErrorPx, s.TP, s.FP, s.FN, len(res.Tracks), len(truth.Tracks))
		if s.Precision < 0.95 || s.Recall < 0.95 {
			t.Errorf("seed %d: precision %.3f, recall %.3f; want >= 0.95", seed, s.Precision, s.Recall)
		}
	}
}

// TestVideosAndProducts checks the MP4s with ffprobe and the other files.
func TestVideosAndProducts(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffmpeg/ffprobe are required (apt-get install ffmpeg)")
	}
	fr, truth, done := simulated(t, simulate.MovieSpec{Frames: 30, Width: 130, Height: 98, Particles: 8, Seed: 4})
	defer done()
	dir := t.TempDir()
	res, err := movie.Analyze(context.Background(), fr, fr.Frames, fr.H, fr.W, dir, movie.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"movie.mp4", "annotated.mp4"} {
		out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
			"stream=codec_name,pix_fmt,width,height,nb_read_frames", "-of", "csv=p=0", filepath.Join(dir, name)).Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f := strings.Split(strings.TrimSpace(string(out)), ",")
		if len(f) != 5 || f[0] != "h264" || f[3] != "yuv420p" || f[4] != "30" {
			t.Fatalf("%s: ffprobe %q", name, out)
		}
		if w, _ := strconv.Atoi(f[1]); w != 130 {
			t.Fatalf("%s: width %d (padded to even from 130?)", name, w)
		}
	}
	var tracks struct {
		Counts []int
		Tracks []movie.Track
	}
	b, err := os.ReadFile(filepath.Join(dir, "tracks.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &tracks); err != nil || len(tracks.Counts) != 30 || len(tracks.Tracks) == 0 {
		t.Fatalf("tracks.json: %v %d counts %d tracks", err, len(tracks.Counts), len(tracks.Tracks))
	}
	if png, err := os.ReadFile(filepath.Join(dir, "counts.png")); err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Fatalf("counts.png: %v", err)
	}
	if d := res.MeanCount() - float64(truth.Counts[0]); d > 2 || d < -2 {
		t.Errorf("mean count %.1f vs %d particles in frame 0", res.MeanCount(), truth.Counts[0])
	}
}

// TestTrackerFollowsParticles: long tracks, about one per particle.
func TestTrackerFollowsParticles(t *testing.T) {
	t.Parallel()
	fr, truth, done := simulated(t, simulate.MovieSpec{Frames: 50, Width: 200, Height: 200, Particles: 10, Seed: 7})
	defer done()
	res, err := movie.Analyze(context.Background(), fr, fr.Frames, fr.H, fr.W, t.TempDir(), movie.Options{NoVideo: true})
	if err != nil {
		t.Fatal(err)
	}
	long := 0
	for _, tr := range res.Tracks {
		if len(tr.Points) >= 20 {
			long++
		}
	}
	if long < len(truth.Tracks)-2 || len(res.Tracks) > 2*len(truth.Tracks) {
		t.Errorf("%d tracks (%d long) for %d particles", len(res.Tracks), long, len(truth.Tracks))
	}
}

// TestDrift: the common motion of the particles is the stage drift.
func TestDrift(t *testing.T) {
	t.Parallel()
	for _, want := range []float64{0.15, -1} {
		fr, _, done := simulated(t, simulate.MovieSpec{Frames: 60, Width: 200, Height: 200, Particles: 12, Seed: 9, Drift: want})
		res, err := movie.Analyze(context.Background(), fr, fr.Frames, fr.H, fr.W, t.TempDir(), movie.Options{NoVideo: true})
		done()
		if err != nil {
			t.Fatal(err)
		}
		dx, dy, n := res.Drift()
		w := max(want, 0)
		if n < 5 || dx < w-0.05 || dx > w+0.05 || dy < w-0.05 || dy > w+0.05 {
			t.Errorf("drift %.3f, %.3f px/frame from %d tracks; want %.2f", dx, dy, n, w)
		}
	}
}

// stillField returns a function that gives tr a frame's detections near,
// with four particles far away that fix the drift at zero, and returns
// what Update returns.
func stillField(tr *movie.Tracker) func(f int, near ...movie.Detection) []movie.Detection {
	return func(f int, near ...movie.Detection) []movie.Detection {
		dets := append([]movie.Detection(nil), near...)
		for k := range 4 {
			dets = append(dets, movie.Detection{X: 30 + 40*float64(k), Y: 30, DiameterPx: 6, Elongation: 1})
		}
		return tr.Update(f, dets)
	}
}

// TestTrackerSharesBlob: two touching particles followed as two, then seen
// as one elongated blob, stay two with their own identities and shares of
// the blob; a round blob (coalesced) is left to one track.
func TestTrackerSharesBlob(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		elongation float64
		want       int
	}{{1.8, 2}, {1.1, 1}} {
		// A (d 9 px) at x 100 and B (d 6 px) at x 107, still.
		frame := stillField(&movie.Tracker{Width: 200, Height: 200})
		var a, b int
		for f := range 3 {
			dets := frame(f, movie.Detection{X: 100, Y: 100, DiameterPx: 9, AreaPx: 63.6, Elongation: 1},
				movie.Detection{X: 107, Y: 100, DiameterPx: 6, AreaPx: 28.3, Elongation: 1})
			a, b = dets[0].Track, dets[1].Track
		}
		// The blob: area 85 px, its centre pulled toward A.
		dets := frame(3, movie.Detection{X: 102.2, Y: 100, DiameterPx: 10.4, AreaPx: 85, Intensity: 850, Elongation: c.elongation})
		var pair []movie.Detection
		for _, d := range dets {
			if d.Y == 100 {
				pair = append(pair, d)
			}
		}
		if len(pair) != c.want {
			t.Fatalf("elongation %.1f: %d detections of the pair, want %d: %+v", c.elongation, len(pair), c.want, pair)
		}
		if c.want == 1 {
			continue
		}
		da, db := pair[0], pair[1]
		if da.Track != a || db.Track != b {
			da, db = db, da
		}
		if da.Track != a || db.Track != b {
			t.Fatalf("tracks %d and %d, want %d and %d", da.Track, db.Track, a, b)
		}
		// Shares in proportion to the areas (9² : 6²), centres 7 px apart
		// about the blob's.
		if math.Abs(da.AreaPx+db.AreaPx-85) > 1e-6 || math.Abs(da.AreaPx/db.AreaPx-81.0/36) > 0.01 ||
			math.Abs(da.Intensity+db.Intensity-850) > 1e-6 || math.Abs(db.X-da.X-7) > 0.01 || da.X > 102.2 || db.X < 102.2 {
			t.Errorf("shares: A %+v, B %+v", da, db)
		}
		// A pair that shared a blob is still two in a rounder one (not yet
		// round enough to have coalesced), which a pair seen apart the
		// frame before is not (the case of elongation 1.1 above).
		n := 0
		for _, d := range frame(4, movie.Detection{X: 102.2, Y: 100, DiameterPx: 10.4, AreaPx: 85, Intensity: 850, Elongation: 1.2}) {
			if d.Y == 100 {
				n++
			}
		}
		if n != 2 {
			t.Errorf("a pair that shared a blob: %d detections in a blob of elongation 1.2, want 2", n)
		}
	}
}

// TestTrackerSharesLongBlobOfAFaintPartner: a bright particle and a faint
// small one beside it seen as one blob no larger than the bright one alone
// (the faint one adds little) stay two where the blob is long (elongation
// twoByShape or more); a blob as small and less long is left to the
// bright one's track, and a speck that long is not split into specks.
func TestTrackerSharesLongBlobOfAFaintPartner(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name             string
		bx, x            float64 // B's place, the blob's
		area, elongation float64
		want             int
	}{{"long", 106, 102, 63, 2.9, 2}, {"less long", 106, 102, 63, 1.5, 1}, {"speck", 103, 101.5, 3, 2.9, 1}} {
		// A (d 9 px) at x 100 and B (d 5 px) beside it, still.
		frame := stillField(&movie.Tracker{Width: 200, Height: 200})
		for f := range 3 {
			frame(f, movie.Detection{X: 100, Y: 100, DiameterPx: 9, AreaPx: 63.6, Elongation: 1},
				movie.Detection{X: c.bx, Y: 100, DiameterPx: 5, AreaPx: 19.6, Elongation: 1})
		}
		d := 2 * math.Sqrt(c.area/math.Pi)
		n := 0
		for _, det := range frame(3, movie.Detection{X: c.x, Y: 100, DiameterPx: d, AreaPx: c.area, Intensity: 600, Elongation: c.elongation}) {
			if det.Y == 100 {
				n++
			}
		}
		if n != c.want {
			t.Errorf("%s blob (area %.0f px, elongation %.1f): %d detections of the pair, want %d", c.name, c.area, c.elongation, n, c.want)
		}
	}
}

// TestTrackerNeckTrack: a detection seen once on the neck between two
// touching particles starts a track, which must not take the blob the
// pair becomes two frames later (its centre is near where that track is):
// the particles' own tracks keep it and share it.
func TestTrackerNeckTrack(t *testing.T) {
	t.Parallel()
	frame := stillField(&movie.Tracker{Width: 200, Height: 200})
	a9 := movie.Detection{X: 100, Y: 100, DiameterPx: 9, AreaPx: 63.6, Elongation: 1}
	b6 := movie.Detection{X: 107, Y: 100, DiameterPx: 6, AreaPx: 28.3, Elongation: 1}
	var a, b int
	for f := range 3 {
		dets := frame(f, a9, b6)
		a, b = dets[0].Track, dets[1].Track
	}
	neck := frame(3, a9, b6, movie.Detection{X: 103.5, Y: 100, DiameterPx: 3, AreaPx: 7, Elongation: 1})[2].Track
	frame(4, a9, b6)
	dets := frame(5, movie.Detection{X: 102.2, Y: 100, DiameterPx: 10.4, AreaPx: 85, Intensity: 850, Elongation: 1.8})
	got := map[int]bool{}
	for _, d := range dets {
		if d.Y == 100 {
			got[d.Track] = true
		}
	}
	if len(got) != 2 || !got[a] || !got[b] || got[neck] {
		t.Fatalf("the blob went to tracks %v; want the pair's %d and %d, not the neck's %d", got, a, b, neck)
	}
}

// TestTrackerKeepsItsParticle: a track whose particle is there keeps it,
// rather than reaching for a fragment beside it so that a track seen once
// nearby may have the particle (pairing as many as can be did that).
func TestTrackerKeepsItsParticle(t *testing.T) {
	t.Parallel()
	frame := stillField(&movie.Tracker{Width: 200, Height: 200})
	p := movie.Detection{X: 100, Y: 100, DiameterPx: 7, AreaPx: 38, Elongation: 1}
	var own int
	for f := range 3 {
		own = frame(f, p)[0].Track
	}
	frame(3, p, movie.Detection{X: 97, Y: 100, DiameterPx: 5, AreaPx: 20, Elongation: 1})
	frame(4, p)
	frame(5, p)
	dets := frame(6, p, movie.Detection{X: 105.5, Y: 100, DiameterPx: 1.1, AreaPx: 1, Elongation: 1})
	if dets[0].Track != own {
		t.Fatalf("the particle went to track %d, the fragment to %d; want the particle's own track %d", dets[0].Track, dets[1].Track, own)
	}
}

// TestShareNotOnParticleSeenApart: a track that finds nothing beside a blob
// is not given a share of it that would lie on a particle detected apart
// (the tracks' positions across the blob's axis put the share at the far
// end, onto that particle: a duplicate, which two tracks then took turns
// at for frames).
func TestShareNotOnParticleSeenApart(t *testing.T) {
	t.Parallel()
	frame := stillField(&movie.Tracker{Width: 200, Height: 200})
	c := movie.Detection{X: 92, Y: 100, DiameterPx: 6, AreaPx: 28, Elongation: 1}
	for f := range 3 {
		frame(f, c, movie.Detection{X: 104, Y: 100, DiameterPx: 9, AreaPx: 64, Elongation: 1}, movie.Detection{X: 103, Y: 95, DiameterPx: 5, AreaPx: 20, Elongation: 1})
	}
	// The blob along x, its second moment that of two discs 10 px apart.
	dets := frame(3, c, movie.WithAxis(movie.Detection{X: 102, Y: 100, DiameterPx: 11, AreaPx: 95, Intensity: 950, Elongation: 1.9}, 22.9, 1, 0))
	own := dets[0].Track
	for _, d := range dets {
		if d.Track != own && math.Hypot(d.X-c.X, d.Y-c.Y) < c.DiameterPx/2 {
			t.Fatalf("track %d was given a share at (%.1f, %.1f), on the particle track %d sees apart", d.Track, d.X, d.Y, own)
		}
	}
}

// disc is a round particle of diameter d px at (x, y), as the detector
// reports one seen alone.
func disc(x, y, d float64) movie.Detection {
	return movie.Detection{X: x, Y: y, DiameterPx: d, AreaPx: math.Pi * d * d / 4, Intensity: 10 * math.Pi * d * d / 4, Elongation: 1}
}

// TestTrackerLastSeenKeepsParticle: of two tracks that could take a
// detection, the one that found its particle in the frame before keeps
// it against one unseen since, even a little nearer (two tracks on one
// particle took turns at it frame by frame).
func TestTrackerLastSeenKeepsParticle(t *testing.T) {
	t.Parallel()
	frame := stillField(&movie.Tracker{Width: 200, Height: 200})
	var own, stale int
	for f := range 4 {
		dets := frame(f, disc(100, 100, 7), disc(104, 100, 7))
		own, stale = dets[0].Track, dets[1].Track
	}
	frame(4, disc(100, 100, 7))
	dets := frame(5, disc(102.2, 100, 7))
	if dets[0].Track != own {
		t.Fatalf("the detection went to track %d; want %d, seen in the frame before (not %d, unseen since frame 3)", dets[0].Track, own, stale)
	}
}

// TestTrackerMergeSeenLate: a particle that vanishes beside a larger one,
// which a frame later has grown over where the small one was, merged into
// it (it was taken for a dissolution: the check was made only in the
// frame the small one vanished, when the larger had not grown yet).
func TestTrackerMergeSeenLate(t *testing.T) {
	t.Parallel()
	tr := &movie.Tracker{Width: 200, Height: 200}
	frame := stillField(tr)
	big := disc(100, 100, 9)
	var all [][]movie.Detection
	var a, b int
	for f := range 6 {
		dets := frame(f, big, disc(108, 100, 6))
		a, b = dets[0].Track, dets[1].Track
		all = append(all, dets)
	}
	all = append(all, frame(6, big))
	for f := 7; f < 12; f++ {
		all = append(all, frame(f, movie.Detection{X: 103, Y: 100, DiameterPx: 10.8, AreaPx: 91.6, Elongation: 1.05}))
	}
	tr.Finish(all)
	var got []movie.Event
	for _, e := range tr.Events {
		if e.Type == "merge" {
			got = append(got, e)
		}
	}
	if len(got) != 1 || got[0].Gone != b || got[0].Into != a || got[0].Frame < 6 || got[0].Frame > 7 {
		t.Fatalf("events %+v; want the merge of track %d into %d in frame 6 or 7", tr.Events, b, a)
	}
}

// TestTrackerOldTrackKeepsBlob: a track seen twice (a small particle half
// hidden by a larger one, seen apart for two frames) does not take the
// blob of the two from the larger one's long track because the blob's
// centre is a little nearer to it.
func TestTrackerOldTrackKeepsBlob(t *testing.T) {
	t.Parallel()
	frame := stillField(&movie.Tracker{Width: 200, Height: 200})
	big := disc(100, 100, 7)
	var old, young int
	for f := range 6 {
		old = frame(f, big)[0].Track
	}
	for f := 6; f < 8; f++ {
		dets := frame(f, big, disc(102.2, 98, 5))
		young = dets[1].Track
	}
	dets := frame(8, movie.Detection{X: 101.4, Y: 98.9, DiameterPx: 7.5, AreaPx: 44, Elongation: 1.1})
	if dets[0].Track != old {
		t.Fatalf("the blob went to track %d; want the long track %d (not %d, seen twice)", dets[0].Track, old, young)
	}
}

// TestTrackerKeepsLargePieceOfItsParticle: a large particle seen as a
// large piece and a small one (a blob cut where small particles touch
// it) keeps its track on the large piece, even a little farther: a
// particle does not shrink to a fifth of its area in a frame (the tracks
// of a cluster had taken one another's particles, and two tracks had
// taken turns at a large particle).
func TestTrackerKeepsLargePieceOfItsParticle(t *testing.T) {
	t.Parallel()
	frame := stillField(&movie.Tracker{Width: 200, Height: 200})
	var own int
	for f := range 5 {
		own = frame(f, disc(100, 100, 10))[0].Track
	}
	dets := frame(5, disc(102.5, 100, 4.5), disc(96.5, 100, 9.5))
	if dets[1].Track != own {
		t.Fatalf("the large piece went to track %d and the small one to %d; want the large one on the particle's track %d", dets[1].Track, dets[0].Track, own)
	}
}

// TestTrackerSharesChainOfThree: three touching particles in a row, seen
// as one blob, keep their three tracks, each a third of the blob where it
// was along it (two shares left the third particle's track with nothing,
// and put the middle one's at an end).
func TestTrackerSharesChainOfThree(t *testing.T) {
	t.Parallel()
	frame := stillField(&movie.Tracker{Width: 200, Height: 200})
	var ids [3]int
	for f := range 3 {
		var near []movie.Detection
		for k := range 3 {
			near = append(near, disc(100+5.5*float64(k), 100, 6))
		}
		dets := frame(f, near...)
		for k := range 3 {
			ids[k] = dets[k].Track
		}
	}
	// Three discs of 6 px, 5.5 px apart along x: the blob's variance along
	// x is (2/3)·5.5² + 3²/4; its outline takes in a little more than the
	// three discs.
	blob := movie.WithAxis(movie.Detection{X: 105.5, Y: 100, DiameterPx: 10.7, AreaPx: 90, Intensity: 900, Elongation: 2.2}, 2.0/3*5.5*5.5+2.25, 1, 0)
	got := map[int]movie.Detection{}
	for _, d := range frame(3, blob) {
		if d.Y == 100 {
			got[d.Track] = d
		}
	}
	if len(got) != 3 {
		t.Fatalf("%d detections of the chain, want 3: %+v", len(got), got)
	}
	for k, id := range ids {
		d, ok := got[id]
		if !ok || math.Abs(d.X-(100+5.5*float64(k))) > 0.5 || math.Abs(d.AreaPx-30) > 0.5 || math.Abs(d.Intensity-300) > 0.5 {
			t.Errorf("particle %d (track %d): %+v, want a third of the blob at x %.1f", k, id, d, 100+5.5*float64(k))
		}
	}
}

// TestTrackerNoThirdShareOffAxis: a track beside a blob of two, off its
// long axis (a faint particle beside two bright ones, not part of their
// blob), is not given a third of it.
func TestTrackerNoThirdShareOffAxis(t *testing.T) {
	t.Parallel()
	frame := stillField(&movie.Tracker{Width: 200, Height: 200})
	var faint int
	for f := range 3 {
		dets := frame(f, disc(100, 100, 6), disc(105.5, 100, 6), disc(102.7, 102.8, 4))
		faint = dets[2].Track
	}
	blob := movie.WithAxis(movie.Detection{X: 102.75, Y: 100, DiameterPx: 9.5, AreaPx: 71, Intensity: 710, Elongation: 1.9}, 5.5*5.5/4+2.25, 1, 0)
	for _, d := range frame(3, blob) {
		if d.Track == faint {
			t.Fatalf("the faint particle's track %d was given a share of the pair's blob: %+v", faint, d)
		}
	}
}

// TestTrackerNoThirdShareInShortBlob: a blob no longer than a pair's is not
// shared by three, even with a third track along its axis.
func TestTrackerNoThirdShareInShortBlob(t *testing.T) {
	t.Parallel()
	frame := stillField(&movie.Tracker{Width: 200, Height: 200})
	var third int
	for f := range 3 {
		third = frame(f, disc(100, 100, 6), disc(105.5, 100, 6), disc(109, 100, 3))[2].Track
	}
	blob := movie.WithAxis(movie.Detection{X: 103.5, Y: 100, DiameterPx: 9.8, AreaPx: 75, Intensity: 750, Elongation: 1.5}, 5.5*5.5/4+2.25, 1, 0)
	for _, d := range frame(3, blob) {
		if d.Track == third {
			t.Fatalf("track %d was given a third share of a blob of elongation 1.5: %+v", third, d)
		}
	}
}

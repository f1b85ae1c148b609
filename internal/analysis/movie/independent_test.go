package movie_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/picoflow/picoflow/internal/analysis/movie"
	"github.com/picoflow/picoflow/internal/analysis/movie/yolo"
)

// rawFrames serves frames from a float64 stack in memory.
type rawFrames struct {
	data []float64
	h, w int
}

func (r rawFrames) Read(_ context.Context, t int, dst []float64) error {
	copy(dst, r.data[t*r.h*r.w:(t+1)*r.h*r.w])
	return nil
}

type simParticle struct {
	ID      int
	X, Y, R float64
	Kind    string
	SNR     float64
}

type simEvent struct {
	Type       string
	Frame      int
	Into, Gone int
	ID         int // a nucleation's particle
}

// movieScore accumulates the scores of several movies.
type movieScore struct {
	tp, fp, hidden   int
	tiny             int // detections smaller than the detector's MinArea
	bins             [3]struct{ tp, n int }
	diamErr          []float64
	switches, tracks int
	// Of the particles whose median local SNR where found is >= 5 (those
	// the recall targets count).
	seenSwitches, seenTracks int
	merges, found            int
	reported                 int // merge events reported
	reportedTrue             int // of which a true merge (frame ±2, place)
	// Nucleations and dissolutions (see nearEvent).
	nucleations, dissolutions eventScore
	misses                    []string
	// detector, when set, makes the detectors scored (else the classical).
	detector func() (movie.FrameDetector, error)
}

var radiusBins = [3]struct {
	name   string
	lo, hi float64
}{{"r >= 3 px", 3, 99}, {"2-3 px", 2, 3}, {"1.5-2 px", 1.5, 2}}

// TestIndependentMovies scores the classical detector and the tracker on
// movies from an independent image model (testdata/moviesim.py: projected
// spheres, faceted and raft particles on a textured film, scan-line and
// shot noise, current jumps, drift, Brownian motion, nucleation, touching
// pairs, coalescence, and in one set dissolution). Precision; recall by
// particle radius where the local SNR >= 5 (a particle centred on a
// larger one is one blob in projection and counted apart); the equivalent
// diameters of the particles of r >= 3 px against their true projected
// areas; identity switches per 100 true tracks; the merges found in the
// right frame (±2); the nucleations and dissolutions found and claimed
// (no target; guarded where they stand). Issue
// 17's targets: precision >= 0.97; recall >= 0.99 for r >= 3 px, >= 0.95
// for 2-3 px, >= 0.8 for 1.5-2 px; equivalent diameters within 10 %;
// identity switches <= 2 per 100 tracks and >= 80 % of the merges found
// in the right frame.
//
// Twelve sets of seven movies: those the tracker was tuned on (seeds
// 11-13, then 21-24), seven it was not tuned on but changes were made
// after looking at (111-124), seven no change was made after looking at,
// whose totals were read while choosing constants (211-224), seven made
// later, scored before and after three changes without a look (311-324),
// seven made after a later change, scored before and after it and after
// two more and not looked at (411-424), and seven in which some particles
// dissolve (511-524), the same sizes: what the tuning is worth on movies
// it has not seen (see each). All six were looked at, switch by switch,
// before fillHidden and massWeight; two sets made after the first
// (611-624, and 711-724 with dissolution) were scored once with and once
// without it (711-724's switches since looked at, no change made from
// them); two made after massWeight (811-824, 911-924 with dissolution)
// and two after the later merge (1011-1024, 1111-1124 with dissolution),
// each scored before and after it; two after the recent mean position
// (1211-1224, 1311-1324 with dissolution), scored before and after it.
// ONLY=seed runs that movie alone (DBG=1 lists the switches, DBG=2 with
// the detections around each, DBG=5 each switched particle's tracks in
// runs, DBG=6 the false detections; TRACKS=id,id lists those tracks'
// points, NEAR=frame,x,y the detections and particles there).
func TestIndependentMovies(t *testing.T) {
	t.Parallel()
	t.Run("tuned", func(t *testing.T) {
		// Seeds 21-24 were added after the tracker was tuned on 11-13
		// (where it reached 1.6 switches per 100 and 15 of 18 merges, and
		// 3.1 per 100 on all seven); 1.18 per 100 on all seven now, since a
		// track seen once pays to take a detection, a pair that shared a
		// blob keeps sharing a rounder one, a track keeps its particle
		// rather than reach for a fragment, parts of cut regions smaller
		// than MinArea are no longer reported (fragments of thin rafts
		// under the noise), and the changes named under held-out (1.29 per
		// 100), and a track's cost of a detection smaller than its
		// particle (shrinkCost, 1.07 per 100), and a gap closed across a
		// change of measured size (0.86 per 100). False detections: 36 (65
		// before those changes). Merges: 37 of 44, 37 of the 47 claimed
		// true. Nucleations: 42 of 42 found, 42 of the 50 claimed true;
		// 41 of 42, 41 of 41 since a nucleus must be seen steadily after
		// the first MaxGap frames.
		// A blob at least twoByShape long shared whatever its size (chosen
		// on the four open sets' totals, 59 -> 54 switches): 0.86, as
		// before.
		scoreMovies(t, tunedSeeds, expected{fp: 50, switches: 1.1, merges: 0.8})
	})
	t.Run("held-out", func(t *testing.T) {
		// Not looked at while tuning the four changes above: 5.96 switches
		// per 100 after them (6.4 before), 43 false detections (47), 35 of
		// 44 merges (36), 35 of 44 claimed true (36 of 48). Then looked at,
		// and five changes made: a share placed on a particle seen apart
		// (a duplicate two tracks took turns at: 6 switches) is no longer
		// made (5.53 per 100); a track unseen in the frame before pays
		// missedCost (two tracks had taken turns at one raft for 10
		// switches); a track that vanished is found merged in a later
		// frame while it is still live (a raft that faded two frames
		// before its coalescence had gone down as a dissolution); a track
		// seen twice pays half of tentativeCost (it took the blob of a
		// particle and a smaller one half hidden by it from the larger
		// one's track); a chain of three seen as one blob is shared in
		// thirds (two shares had put the middle particle's track on an
		// end): 2.55 per 100, 34 false detections, 36 of 44 merges, 36 of
		// the 44 claimed true. Then shrinkCost, chosen on the totals of
		// the four sets: 2.13 per 100 (a cluster of three, 4 switches, no
		// longer), 36 of 44 merges, 36 of the 45 claimed true. Then a gap
		// closed where the particle is found again, however differently
		// large it was measured (one about as large preferred; chosen on
		// the totals of the four sets: 59 against 64 switches): 2.02 per
		// 100, nucleations 40 of 42 found (as before), 40 of the 52
		// claimed true (53); then a nucleus seen steadily after the first
		// MaxGap frames (chosen on the four sets' totals): 39 of 42 found,
		// 39 of the 42 claimed true. The switch target is not met here:
		// 14 of the 19 switches are of particles under the noise (median
		// local SNR < 5; of the others, 5 over 601 tracks = 0.83 per 100),
		// thin rafts above all, whose detections are cut unevenly from
		// frame to frame.
		// Then twoByShape (chosen on the four sets' totals): 1.91 per 100
		// (18 switches), 34 false detections, merges the same. fillHidden
		// changed nothing here; then massWeight: 1.81 (17). The later
		// merge (touchingEnds): 37 of 44 merges.
		scoreMovies(t, heldOutSeeds, expected{fp: 45, switches: 1.9, merges: 0.8})
	})
	t.Run("held-out-2", func(t *testing.T) {
		// Not looked at while changing the tracker: 2.35 switches per 100
		// (2.7 with the tracker before the five changes named above; of the
		// particles above the noise 15 over 610 = 2.46 per 100: clusters
		// of three with thin rafts, a pair seen as one in the first
		// frame), 41 false detections (43), 40 of 44 merges (40), 40 of
		// the 46 claimed true (40 of 48). Its totals (not its movies) were
		// then read while choosing missedCost, tentativeCost's decay and
		// when a third share is made: 1.93 per 100 (10 over 610 above the
		// noise = 1.64), 35 false detections, 40 of 44 merges, 40 of the
		// 46 claimed true; and while choosing shrinkCost: 1.82 per 100
		// (10 over 610 above the noise), 34 false detections, merges the
		// same; and while choosing how a gap is closed: 1.60 per 100,
		// the rest the same; and which nucleations to claim: 40 of 42
		// found, 40 of the 41 claimed true (47 claimed before).
		// Then twoByShape: 1.18 per 100 (11 switches; 8 over 610 above
		// the noise), 34 false detections, merges the same. Then
		// fillHidden: 0.96 per 100 (9), 30 false detections. Then
		// massWeight: the same.
		scoreMovies(t, heldOut2Seeds, expected{fp: 45, switches: 1.1, merges: 0.85})
	})
	t.Run("held-out-3", func(t *testing.T) {
		// Made after missedCost, the late merge check and tentativeCost's
		// decay, and scored once with the tracker before them and once
		// after: 3.76 switches per 100 before (of the particles above the
		// noise 13 over 590 = 2.20), 2.79 after (6 over 590 = 1.02), 90
		// and 83 false detections, 38 of 44 merges both (38 of 48, of 47
		// claimed true). Then the chain of three: 2.90 per 100 (6 over
		// 590 above the noise), 99 false detections; the extra ones were
		// looked at (a third share placed between the two bright particles
		// of a cluster whose third, under the noise, lies off their axis),
		// and when a third share is made was chosen on the totals of all
		// four sets: 2.79 per 100 (6 over 590 above the noise), 91 false
		// detections, 38 of 44 merges, 38 of the 47 claimed true. Then
		// shrinkCost, chosen on the totals of the four sets: 1.83 per 100
		// (4 over 590 above the noise; a large particle two tracks had
		// taken turns at, 3 switches, now 1), 86 false detections, merges
		// the same. The gap closing changed nothing here (17 switches).
		// Nucleations: 40 of 42 found, 40 of the 49 claimed true (53
		// claimed before a nucleus had to be seen steadily).
		// twoByShape changed nothing here (17 switches, 86 false
		// detections). fillHidden: 1.61 per 100 (15), 94 false
		// detections (shares of blobs not all on their particle). Then
		// massWeight: 1.39 (13).
		scoreMovies(t, heldOut3Seeds, expected{fp: 100, switches: 1.6, merges: 0.8})
	})
	t.Run("held-out-4", func(t *testing.T) {
		// Made after shrinkCost was chosen, scored once with the tracker
		// before it and once after, and not looked at: 3.20 switches per
		// 100 before (of the particles above the noise 14 over 624 =
		// 2.24), 2.88 after (10 over 624 = 1.60), 63 and 62 false
		// detections, 36 of 44 merges both (36 of the 48 claimed true).
		// Its totals were read once more for a change then dropped (a
		// track's jump off a coalescence refused: 20 -> 18 switches on
		// held-out, but 2.99 per 100 here and 27 more false detections
		// there). Then scored, not looked at, after the gap closing (a
		// change of size no bar): 2.56 per 100 (24 switches, 27 before; 10
		// over 624 above the noise), 62 false detections, 37 of 44 merges
		// (37 of the 48 claimed true), 40 of 42 nucleations (40 of the 48
		// claimed true); after a nucleus had to be seen steadily, scored
		// once more: 40 of 42 found, 40 of the 44 claimed true. The switch
		// target is not met here. Dissolutions claimed (none happens): 18
		// before the dissolution check (see dissolving), 10 after.
		// Scored once after twoByShape was chosen on the four open sets:
		// 2.24 per 100 (21 switches; 10 over 623 above the noise), 67
		// false detections, 37 of 44 merges (37 of the 51 claimed true);
		// once more after its shares had to be 2 px or more (no specks):
		// the same. With fillHidden (chosen on the six sets, this one
		// among them): 1.92 per 100 (18), 48 false detections, merges the
		// same. Then massWeight: 1.49 (14). The later merge: 38 of 44
		// merges, 8 dissolutions claimed (9).
		scoreMovies(t, heldOut4Seeds, expected{fp: 70, switches: 1.7, merges: 0.8})
	})
	t.Run("dissolving", func(t *testing.T) {
		// Made after the gap closing and the nucleation checks, with
		// particles that dissolve (the other sets' movies are the same
		// with or without moviesim.py's "dissolve"), and not looked at
		// but for its false dissolutions, listed once (no change made
		// from them): 2.35 switches per 100 (of the particles above the
		// noise 4 over 635 = 0.63), 40 false detections, 37 of 44 merges
		// (37 of the 46 claimed true), 41 of 42 nucleations (41 of the
		// 43 claimed true). Dissolutions: 62 of 70 found, 62 of the 78
		// claimed true when a track of 3 frames ending at any frame
		// before the last was claimed; 73 claimed when it had to end more
		// than MaxGap frames before the last, and 72, the rule kept, when
		// it had also to be seen longTrack frames (the four sets before:
		// 63 claimed, all false, 41 and 28). The switch target is not met
		// here.
		// Scored once after twoByShape was chosen on the four open sets:
		// 2.03 per 100 (19 switches; 4 over 635 above the noise), 47
		// false detections, 37 of 44 merges (37 of 46 claimed true),
		// dissolutions as before; once more after its shares had to be 2
		// px or more: the same. With fillHidden (chosen on the six sets,
		// this one among them): 1.81 per 100 (17), 49 false detections,
		// merges the same. Then massWeight: 1.60 (15).
		scoreMovies(t, dissolvingSeeds, expected{fp: 55, switches: 1.8, merges: 0.8})
	})
	t.Run("held-out-5", func(t *testing.T) {
		// Made after fillHidden was chosen on the six sets above (gaps of
		// up to 4 frames; 10 gave the dissolving set 21 switches, not 17)
		// and scored once with it and once without: 1.59 switches per 100
		// (15; 3 over 634 above the noise) against 2.01 (19), 20 false
		// detections (18 without), 42 of 44 merges (42 of 49 claimed true)
		// both ways. Scored a third time after massWeight (chosen on the
		// six sets above): 1.38 per 100 (13), the rest the same.
		scoreMovies(t, heldOut5Seeds, expected{fp: 30, switches: 1.5, merges: 0.9})
	})
	t.Run("dissolving-2", func(t *testing.T) {
		// Made and scored as held-out-5 was, with particles that
		// dissolve: 2.13 switches per 100 (20; 3 over 578 above the noise)
		// with fillHidden and without: the switch target is not met here.
		// 60 false detections (57 without), 40 of 44 merges (40 of 52
		// claimed true), 63 of 71 dissolutions (63 of 70 claimed true), 36
		// of 42 nucleations (36 of 40) both ways; after massWeight the
		// same (20 switches). Its switches were then looked at (17 of
		// them of particles under the noise, in clusters of three and
		// four: two coalescing pairs touching, rafts beside spheres; five
		// at a coalescence whose survivor was the smaller one's track);
		// no change was made from them. The later merge: the same.
		scoreMovies(t, dissolving2Seeds, expected{fp: 70, switches: 2.2, merges: 0.85})
	})
	t.Run("held-out-6", func(t *testing.T) {
		// Made after massWeight, with dissolving-3, and scored once
		// before the touching ends' later merge (touchingEnds, stepReach):
		// 1.17 switches per 100 (11; 2 over 610 above the noise), 42
		// false detections, 34 of 44 merges (35 of 46 claimed true): the
		// merge target not met; 12 dissolutions claimed (none happens).
		// Its missed merges were then looked at (a faint raft touching a
		// bright sphere vanishes into its blob frames before the two are
		// one: claimed as a dissolution) and the change made from them:
		// 36 of 44 merges (37 of the 48 claimed true), 11 switches, 10
		// dissolutions claimed.
		scoreMovies(t, heldOut6Seeds, expected{fp: 55, switches: 1.4, merges: 0.8})
	})
	t.Run("dissolving-3", func(t *testing.T) {
		// Made with held-out-6 and scored before and after the later
		// merge, not looked at (its totals read for the change's last
		// form): 1.06 switches per 100 (10) before, 1.17 (11) after; 40
		// false detections; 37 of 44 merges both ways; 65 of 71
		// dissolutions (65 of the 73 claimed true) both ways.
		scoreMovies(t, dissolving3Seeds, expected{fp: 55, switches: 1.4, merges: 0.8})
	})
	t.Run("held-out-7", func(t *testing.T) {
		// Made after the later merge was first tried, scored with the
		// tracker before it and after it: 2.36 switches per 100 before
		// (22; 6 over 608 above the noise), 2.14 after (20; the survivor
		// of a merge found late no longer swapped: largerSurvives), 47
		// false detections, 39 of 44 merges (39 of 42 claimed true) both
		// ways, 13 dissolutions claimed (none happens) both ways. The
		// switch target is not met here. Its switches were then looked at
		// (11 of the 20 in one cluster of movie 1023: a 6 px particle, two
		// of 4.6-4.9 px, a 5 px one under the noise); two changes tried
		// from them were dropped (one never applied, one 158 against 161
		// switches over the twelve sets, 21 here).
		scoreMovies(t, heldOut7Seeds, expected{fp: 60, switches: 2.2, merges: 0.85})
	})
	t.Run("dissolving-4", func(t *testing.T) {
		// Made and scored as held-out-7 was, with particles that
		// dissolve: 1.08 switches per 100 (10) both ways, 75 false
		// detections, 41 of 44 merges (41 of 47 claimed true), 61 of 71
		// dissolutions (61 of the 75 claimed true) both ways; 41 of 42
		// nucleations. (Its false dissolutions were listed once, to find
		// why a first form of the change had lost a merge here and made
		// two more: it had asked the survivor to be round in the frame
		// after the end too.)
		// After the recent mean position (whereNow): 16 switches (1.73).
		scoreMovies(t, dissolving4Seeds, expected{fp: 90, switches: 1.9, merges: 0.85})
	})
	t.Run("held-out-8", func(t *testing.T) {
		// Made after the recent mean position (whereNow) and scored once
		// with the tracker before it and once after, not looked at: 12
		// switches (1.28 per 100) before, 7 (0.75) after; 74 and 70 false
		// detections; 39 of 44 merges both ways; 41 of 42 nucleations.
		scoreMovies(t, heldOut8Seeds, expected{fp: 100, switches: 1.0, merges: 0.85})
	})
	t.Run("dissolving-5", func(t *testing.T) {
		// Made and scored as held-out-8 was, with particles that
		// dissolve: 28 switches (3.00 per 100) before, 26 (2.79) after:
		// the switch target is not met here (its switches listed once:
		// touching pairs seen as one blob that part, the blob's track
		// taking the smaller piece; faint particles in clusters); 64 and
		// 87 false detections, 39 of 44 merges, 64 of 71 dissolutions.
		// Two changes tried after were dropped (a blob's track swapped
		// onto the larger piece where a new track began on it: 175 switches
		// over the fourteen sets both ways, 29 here; the shrink cost on the
		// integrated intensity: 178 and 174). After partAgain (a touching
		// pair taken for one mended where it parted again): 22 switches
		// (2.36 per 100), 164 over the fourteen sets against 175; scored
		// on no new blind set yet.
		scoreMovies(t, dissolving5Seeds, expected{fp: 110, switches: 3.0, merges: 0.85})
	})
	t.Run("held-out-9", func(t *testing.T) {
		// Made after partAgain, scored once without it and once with it,
		// not looked at: 8 switches (0.85 per 100) without, 10 (1.07)
		// with; 40 false detections both ways, 42 of 44 merges.
		scoreMovies(t, heldOut9Seeds, expected{fp: 50, switches: 1.2, merges: 0.85})
	})
	t.Run("dissolving-6", func(t *testing.T) {
		// Made and scored as held-out-9, with particles that dissolve: 8
		// switches (0.86) both ways, 40 false detections, 40 of 44
		// merges, 67 of 71 dissolutions; 34 of 42 nucleations both ways.
		scoreMovies(t, dissolving6Seeds, expected{fp: 50, switches: 1.0, merges: 0.85})
	})
}

// The seeds of the twelve sets of independent movies (see
// TestIndependentMovies).
var (
	tunedSeeds    = sevenMovies(0)
	heldOutSeeds  = sevenMovies(1)
	heldOut2Seeds = sevenMovies(2)
	heldOut3Seeds = sevenMovies(3)
	heldOut4Seeds = sevenMovies(4)
	// dissolvingSeeds are movies in which some particles dissolve.
	dissolvingSeeds = sevenMovies(5)
	// heldOut5Seeds and dissolving2Seeds were made after fillHidden.
	heldOut5Seeds    = sevenMovies(6)
	dissolving2Seeds = sevenMovies(7)
	// heldOut6Seeds and dissolving3Seeds were made after massWeight,
	// heldOut7Seeds and dissolving4Seeds after the later merge.
	heldOut6Seeds    = sevenMovies(8)
	dissolving3Seeds = sevenMovies(9)
	heldOut7Seeds    = sevenMovies(10)
	dissolving4Seeds = sevenMovies(11)
	// heldOut8Seeds and dissolving5Seeds were made after the recent mean
	// position (whereNow).
	heldOut8Seeds    = sevenMovies(12)
	dissolving5Seeds = sevenMovies(13)
	// heldOut9Seeds and dissolving6Seeds were made after partAgain.
	heldOut9Seeds    = sevenMovies(14)
	dissolving6Seeds = sevenMovies(15)
)

// sevenMovies are the seeds of a set: h hundred and 11-13 (the small
// movies) and 21-24.
func sevenMovies(h int) []int {
	var seeds []int
	for _, k := range []int{11, 12, 13, 21, 22, 23, 24} {
		seeds = append(seeds, 100*h+k)
	}
	return seeds
}

// dissolves reports whether the movie of seed has particles that dissolve
// (the dissolving sets': moviesim.py's "dissolve").
func dissolves(seed int) bool { return seed/100 >= 5 && seed/100%2 == 1 }

// scoreSeeds analyses the movies of the seeds (40 frames of 256 px for the
// first seed of a decade, 60 of 512 px for the others) with the detectors
// detector makes (nil: the classical one) and returns their scores.
func scoreSeeds(t *testing.T, seeds []int, detector func() (movie.FrameDetector, error)) movieScore {
	s := movieScore{detector: detector}
	for _, seed := range seeds {
		if only := os.Getenv("ONLY"); only != "" && only != fmt.Sprint(seed) {
			continue
		}
		frames, size := 60, 512
		if seed%10 == 1 {
			frames, size = 40, 256
		}
		s.score(t, seed, frames, size)
	}
	return s
}

// expected is what a set of movies is guarded at: false detections,
// switches per 100 tracks, the share of merges found.
type expected struct {
	fp       int
	switches float64
	merges   float64
}

// scoreMovies scores the classical detector and the tracker on the movies
// of the seeds, logs the scores and checks them against the targets and
// want.
func scoreMovies(t *testing.T, seeds []int, want expected) {
	s := scoreSeeds(t, seeds, nil)
	precision := float64(s.tp) / float64(max(s.tp+s.fp, 1))
	t.Logf("precision %.3f (%d true, %d false detections)", precision, s.tp, s.fp)
	recall := map[string]float64{}
	for k, bn := range s.bins {
		recall[radiusBins[k].name] = float64(bn.tp) / float64(max(bn.n, 1))
		t.Logf("recall %s (local SNR >= 5): %.4f of %d", radiusBins[k].name, recall[radiusBins[k].name], bn.n)
	}
	t.Logf("%d particle-frames lie centred on a larger particle (one blob in projection), not counted", s.hidden)
	within := 0
	abs := make([]float64, len(s.diamErr))
	var mean float64
	for i, e := range s.diamErr {
		abs[i] = math.Abs(e)
		mean += e
		if abs[i] <= 0.1 {
			within++
		}
	}
	sort.Float64s(abs)
	mean /= float64(len(abs))
	t.Logf("equivalent diameters, r >= 3 px: median |error| %.3f, mean error %+.3f, %.3f within 10%% (%d)",
		abs[len(abs)/2], mean, float64(within)/float64(len(abs)), len(abs))
	perHundred := 100 * float64(s.switches) / float64(s.tracks)
	t.Logf("identity switches: %d over %d true tracks = %.2f per 100 (of the particles of median local SNR >= 5: %d over %d = %.2f per 100)", s.switches, s.tracks, perHundred,
		s.seenSwitches, s.seenTracks, 100*float64(s.seenSwitches)/float64(max(s.seenTracks, 1)))
	t.Logf("merges found in the right frame (±2): %d of %d (%d merge events reported, %d of them true)", s.found, s.merges, s.reported, s.reportedTrue)
	n, d := s.nucleations, s.dissolutions
	t.Logf("nucleations found: %d of %d (%d reported, %d of them true)", n.found, n.truth, n.claimed, n.claimedTrue)
	t.Logf("dissolutions found: %d of %d (%d reported, %d of them true)", d.found, d.truth, d.claimed, d.claimedTrue)
	for _, m := range s.misses {
		t.Log(m)
	}
	if s.fp > want.fp {
		t.Errorf("%d false detections (want <= %d)", s.fp, want.fp)
	}
	if s.tiny > 0 {
		t.Errorf("%d detections smaller than MinArea (2 px at the measuring level)", s.tiny)
	}
	if precision < 0.97 || recall["r >= 3 px"] < 0.99 || recall["2-3 px"] < 0.95 || recall["1.5-2 px"] < 0.8 {
		t.Errorf("precision %.3f, recall %v", precision, recall)
	}
	if abs[len(abs)/2] > 0.1 || math.Abs(mean) > 0.05 {
		t.Errorf("equivalent diameters: median |error| %.3f, mean %+.3f; want within 10 %%, unbiased", abs[len(abs)/2], mean)
	}
	if perHundred > want.switches {
		t.Errorf("%.2f identity switches per 100 tracks (want <= %g; the target is 2)", perHundred, want.switches)
	}
	if float64(s.found) < want.merges*float64(s.merges) {
		t.Errorf("%d of %d merges found (want %.0f %%; the target is 80 %%)", s.found, s.merges, 100*want.merges)
	}
	// And the merges claimed (the rest a particle seen to vanish beside
	// another, or dated more than 2 frames off).
	if 10*s.reportedTrue < 6*s.reported {
		t.Errorf("%d of %d merge events true (want 60 %%)", s.reportedTrue, s.reported)
	}
	// The nucleations (no target in the issue; guarded where they stand:
	// 36-41 of 42 found, 82-100 % of those claimed true; dissolving-6,
	// blind, 34 of 42).
	if 100*n.found < 80*n.truth || 10*n.claimedTrue < 8*n.claimed {
		t.Errorf("nucleations: %d of %d found, %d of the %d claimed true (want 80 %% and 80 %%)", n.found, n.truth, n.claimedTrue, n.claimed)
	}
	// The dissolutions (the same: 61-65 of 70-71 found where particles
	// dissolve, 3-14 claimed falsely per set).
	if 100*d.found < 85*d.truth || d.claimed-d.claimedTrue > 15 {
		t.Errorf("dissolutions: %d of %d found, %d of the %d claimed false (want 85 %% and at most 15)", d.found, d.truth, d.claimed-d.claimedTrue, d.claimed)
	}
}

// TestIndependentMoviesYOLO scores a YOLO model (PICOFLOW_YOLO_MODEL, an
// .onnx file) on the same movies, for comparison with the classical
// detector: a model is a facility's own, not part of the build, so
// without one there is nothing to score.
func TestIndependentMoviesYOLO(t *testing.T) {
	model := os.Getenv("PICOFLOW_YOLO_MODEL")
	if model == "" {
		t.Log("PICOFLOW_YOLO_MODEL not set: no model to score")
		return
	}
	detector := func() (movie.FrameDetector, error) { return yolo.New(yolo.Config{Model: model}) }
	for _, set := range []struct {
		name  string
		seeds []int
	}{{"tuned", tunedSeeds}, {"held-out", heldOutSeeds}, {"held-out-2", heldOut2Seeds}, {"held-out-3", heldOut3Seeds}, {"held-out-4", heldOut4Seeds}, {"dissolving", dissolvingSeeds},
		{"held-out-5", heldOut5Seeds}, {"dissolving-2", dissolving2Seeds}, {"held-out-6", heldOut6Seeds}, {"dissolving-3", dissolving3Seeds},
		{"held-out-7", heldOut7Seeds}, {"dissolving-4", dissolving4Seeds}} {
		s := scoreSeeds(t, set.seeds, detector)
		t.Logf("YOLO %s, %s movies: precision %.3f (%d true, %d false); recall r >= 3 px %.3f, 2-3 px %.3f, 1.5-2 px %.3f; %.2f switches per 100 tracks; %d of %d merges",
			model, set.name, float64(s.tp)/float64(max(s.tp+s.fp, 1)), s.tp, s.fp,
			float64(s.bins[0].tp)/float64(max(s.bins[0].n, 1)), float64(s.bins[1].tp)/float64(max(s.bins[1].n, 1)), float64(s.bins[2].tp)/float64(max(s.bins[2].n, 1)),
			100*float64(s.switches)/float64(max(s.tracks, 1)), s.found, s.merges)
	}
}

// score generates one movie, analyses it and adds its scores.
func (s *movieScore) score(t *testing.T, seed, frames, size int) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "m")
	args := []string{"testdata/moviesim.py", fmt.Sprint(seed), fmt.Sprint(frames), fmt.Sprint(size), prefix}
	if dissolves(seed) {
		args = append(args, "dissolve")
	}
	if out, err := exec.Command("/usr/bin/python3", args...).CombinedOutput(); err != nil {
		t.Fatalf("moviesim.py (Debian's python3-numpy and -scipy): %v\n%s", err, out)
	}
	raw, err := os.ReadFile(prefix + ".f64")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]float64, len(raw)/8)
	for i := range data {
		data[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	var truth struct {
		Truth  [][]simParticle
		Events []simEvent
	}
	b, _ := os.ReadFile(prefix + ".json")
	if err := json.Unmarshal(b, &truth); err != nil {
		t.Fatal(err)
	}
	res, err := movie.Analyze(context.Background(), rawFrames{data, size, size}, frames, size, size, dir, movie.Options{NoVideo: true, Workers: 2, NewDetector: s.detector})
	if err != nil {
		t.Fatal(err)
	}
	listTracks(t, res, truth.Truth)
	trackOf := map[int][]int{} // true particle -> our track in each frame it was found
	frameOf := map[int][]int{}
	snrOf := map[int][]float64{} // the local SNR in the frames it was found
	where := map[[2]int]simParticle{}
	// Matching as CLEAR MOT does (Bernardin and Stiefelhagen, 2008): a true
	// particle keeps the track it was matched to while that track has a
	// detection within reach; the others take the nearest free detection,
	// the largest particles first. A switch is a true particle matched to
	// another track than the last one it had.
	lastTrack := map[int]int{}
	for f, parts := range truth.Truth {
		dets := res.Detections[f]
		used := make([]bool, len(dets))
		sort.Slice(parts, func(i, j int) bool { return parts[i].R > parts[j].R })
		kept := map[int]int{} // true particle -> detection, by continuity
		for _, p := range parts {
			last, ok := lastTrack[p.ID]
			if !ok {
				continue
			}
			for j, d := range dets {
				if !used[j] && d.Track == last && math.Hypot(d.X-p.X, d.Y-p.Y) <= math.Max(3, p.R) {
					used[j], kept[p.ID] = true, j
					break
				}
			}
		}
		for _, p := range parts {
			where[[2]int{p.ID, f}] = p
			best, bd := -1, math.Max(3, p.R)
			if j, ok := kept[p.ID]; ok {
				best, used[j] = j, false
			} else {
				for j, d := range dets {
					if dd := math.Hypot(d.X-p.X, d.Y-p.Y); !used[j] && dd <= bd {
						best, bd = j, dd
					}
				}
			}
			hidden := hiddenBy(p, parts)
			if best >= 0 {
				lastTrack[p.ID] = dets[best].Track
			}
			if best >= 0 {
				used[best] = true
				s.tp++
				if !hidden {
					trackOf[p.ID] = append(trackOf[p.ID], dets[best].Track)
					frameOf[p.ID] = append(frameOf[p.ID], f)
					snrOf[p.ID] = append(snrOf[p.ID], p.SNR)
				}
				if p.R >= 3 && p.SNR >= 5 && !hidden {
					want := 2 * p.R
					if p.Kind == "faceted" { // a hexagon of circumradius R
						want = 2 * p.R * math.Sqrt(3*math.Sqrt(3)/(2*math.Pi))
					}
					s.diamErr = append(s.diamErr, dets[best].DiameterPx/want-1)
				}
			}
			if hidden {
				s.hidden++
				continue
			}
			for k, bn := range radiusBins {
				if p.SNR >= 5 && p.R >= bn.lo && p.R < bn.hi {
					s.bins[k].n++
					if best >= 0 {
						s.bins[k].tp++
					}
				}
			}
		}
		for j, u := range used {
			if !u {
				s.fp++
				if os.Getenv("DBG") == "6" {
					d := dets[j]
					tl := 0
					if d.Track >= 0 {
						tl = len(res.Tracks[d.Track].Points)
					}
					t.Logf("fp: seed %d f%d t%d (len %d) (%.1f,%.1f) d%.1f e%.2f area %.1f box %.0fx%.0f snr %.1f", seed, f, d.Track, tl, d.X, d.Y, d.DiameterPx, d.Elongation, d.AreaPx, d.W, d.H, d.SNR)
				}
			}
			// (A share of a blob the tracker split keeps the blob's box:
			// not the detector's.)
			if dets[j].AreaPx < 2 && dets[j].W*dets[j].H <= 4 {
				s.tiny++
			}
		}
	}
	owner := map[int]map[int]int{} // our track -> true particle -> frames
	for id, tracks := range trackOf {
		for _, tr := range tracks {
			if owner[tr] == nil {
				owner[tr] = map[int]int{}
			}
			owner[tr][id]++
		}
	}
	major := func(tr int) (int, int) {
		best, n := -1, 0
		for id, k := range owner[tr] {
			if k > n {
				best, n = id, k
			}
		}
		return best, n
	}
	for id, tracks := range trackOf {
		s.tracks++
		seen := median(snrOf[id]) >= 5
		if seen {
			s.seenTracks++
		}
		if os.Getenv("DBG") == "5" && len(tracks) > 0 {
			line, start := fmt.Sprintf("runs: seed %d p%d snr%.0f r%.1f:", seed, id, median(snrOf[id]), where[[2]int{id, frameOf[id][0]}].R), 0
			for i := 1; i <= len(tracks); i++ {
				if i == len(tracks) || tracks[i] != tracks[i-1] {
					o, _ := major(tracks[start])
					tr := res.Tracks[tracks[start]]
					line += fmt.Sprintf(" t%d[f%d-f%d of f%d-f%d, p%d]", tracks[start], frameOf[id][start], frameOf[id][i-1], tr.Points[0].Frame, tr.Points[len(tr.Points)-1].Frame, o)
					start = i
				}
			}
			if strings.Count(line, " t") > 1 {
				t.Log(line)
			}
		}
		for i := 1; i < len(tracks); i++ {
			if tracks[i] != tracks[i-1] {
				s.switches++
				if seen {
					s.seenSwitches++
				}
				if os.Getenv("DBG") != "" {
					prev := res.Tracks[tracks[i-1]]
					o, n := major(tracks[i])
					me := where[[2]int{id, frameOf[id][i]}]
					other := where[[2]int{o, frameOf[id][i]}]
					if os.Getenv("DBG") == "2" {
						for _, f := range []int{frameOf[id][i-1], frameOf[id][i-1] + 1, frameOf[id][i]} {
							me := where[[2]int{id, f}]
							line := fmt.Sprintf("   seed %d f%d p%d at (%.1f,%.1f) r%.1f | dets:", seed, f, id, me.X, me.Y, me.R)
							for _, d := range res.Detections[f] {
								if math.Hypot(d.X-me.X, d.Y-me.Y) < 15 {
									line += fmt.Sprintf(" [t%d (%.1f,%.1f) d%.1f e%.2f]", d.Track, d.X, d.Y, d.DiameterPx, d.Elongation)
								}
							}
							line += " | truth:"
							for _, q := range truth.Truth[f] {
								if math.Hypot(q.X-me.X, q.Y-me.Y) < 15 {
									line += fmt.Sprintf(" [p%d (%.1f,%.1f) r%.1f]", q.ID, q.X, q.Y, q.R)
								}
							}
							t.Log(line)
						}
					}
					tm := ""
					for _, e := range truth.Events {
						if e.Type == "merge" && (e.Into == id || e.Gone == id) && abs(e.Frame-frameOf[id][i]) <= 3 {
							tm = fmt.Sprintf(" [true merge of p%d into p%d in f%d]", e.Gone, e.Into, e.Frame)
						}
					}
					t.Logf("switch:%s seed %d snr%.0f p%d r%.1f f%d->f%d track %d (last seen f%d, merged into %d) -> track %d (first f%d), mostly p%d (%d frames) r%.1f, gap %.1f", tm, seed, median(snrOf[id]), id, me.R, frameOf[id][i-1], frameOf[id][i], tracks[i-1], prev.Points[len(prev.Points)-1].Frame, prev.MergedInto, tracks[i], res.Tracks[tracks[i]].Points[0].Frame, o, n, other.R, math.Hypot(me.X-other.X, me.Y-other.Y)-me.R-other.R)
				}
			}
		}
	}
	for _, m := range res.Events {
		if m.Type != "merge" {
			continue
		}
		s.reported++
		for _, e := range truth.Events {
			p := where[[2]int{e.Into, e.Frame}]
			if e.Type == "merge" && abs(m.Frame-e.Frame) <= 2 && math.Hypot(m.X-p.X, m.Y-p.Y) <= math.Max(5, p.R) {
				s.reportedTrue++
				break
			}
		}
	}
	s.nucleations.add(scoreEvents("nucleation", truth.Events, res.Events, nearEvent(where, 0, 2, 20)))
	s.dissolutions.add(scoreEvents("dissolution", truth.Events, res.Events, nearEvent(where, 1, 15, 2)))
	for _, e := range truth.Events {
		if e.Type != "merge" {
			continue
		}
		s.merges++
		p := where[[2]int{e.Into, e.Frame}]
		ok := false
		for _, m := range res.Events {
			if m.Type == "merge" && abs(m.Frame-e.Frame) <= 2 && math.Hypot(m.X-p.X, m.Y-p.Y) <= math.Max(5, p.R) {
				ok = true
			}
		}
		if ok {
			s.found++
		} else {
			near := ""
			for _, m := range res.Events {
				if math.Hypot(m.X-p.X, m.Y-p.Y) <= 15 {
					near += fmt.Sprintf(" %s@%d(%.0f,%.0f)", m.Type, m.Frame, m.X, m.Y)
				}
			}
			s.misses = append(s.misses, fmt.Sprintf("seed %d: merge of %d into %d in frame %d at (%.0f, %.0f) not found; near:%s", seed, e.Gone, e.Into, e.Frame, p.X, p.Y, near))
			if os.Getenv("DBG") == "3" {
				for f := max(e.Frame-7, 0); f <= min(e.Frame+3, len(truth.Truth)-1); f++ {
					line := fmt.Sprintf("   f%d dets:", f)
					for _, d := range res.Detections[f] {
						if math.Hypot(d.X-p.X, d.Y-p.Y) < 12 {
							line += fmt.Sprintf(" [t%d (%.1f,%.1f) d%.1f e%.2f i%.0f]", d.Track, d.X, d.Y, d.DiameterPx, d.Elongation, d.Intensity)
						}
					}
					line += " | truth:"
					for _, q := range truth.Truth[f] {
						if math.Hypot(q.X-p.X, q.Y-p.Y) < 12 {
							line += fmt.Sprintf(" [p%d (%.1f,%.1f) r%.1f %s snr%.0f]", q.ID, q.X, q.Y, q.R, q.Kind, q.SNR)
						}
					}
					s.misses = append(s.misses, line)
				}
			}
		}
	}
}

func abs(v int) int { return max(v, -v) }

// eventScore is how the events of one type were found: true ones, those
// a reported one lies on, reported ones, and those that lie on a true one.
type eventScore struct{ truth, found, claimed, claimedTrue int }

func (e *eventScore) add(o eventScore) {
	e.truth, e.found, e.claimed, e.claimedTrue = e.truth+o.truth, e.found+o.found, e.claimed+o.claimed, e.claimedTrue+o.claimedTrue
}

// scoreEvents scores the reported events of type typ against the true
// ones, near telling whether a reported one lies on a true one.
func scoreEvents(typ string, truth []simEvent, reported []movie.Event, near func(simEvent, movie.Event) bool) eventScore {
	var sc eventScore
	for _, e := range truth {
		if e.Type != typ {
			continue
		}
		sc.truth++
		if slices.ContainsFunc(reported, func(m movie.Event) bool { return m.Type == typ && near(e, m) }) {
			sc.found++
		}
	}
	for _, m := range reported {
		if m.Type != typ {
			continue
		}
		sc.claimed++
		if slices.ContainsFunc(truth, func(e simEvent) bool { return e.Type == typ && near(e, m) }) {
			sc.claimedTrue++
		} else if os.Getenv("DBG") == "4" {
			fmt.Printf("false %s: frame %d at (%.0f, %.0f)\n", typ, m.Frame, m.X, m.Y)
		}
	}
	return sc
}

// nearEvent tells whether a reported event lies on a true one: the
// particle within max(5, r) px in the reported frame less back, reported
// from before frames before the true event to after frames after it.
// Nucleations: the reported frame, 2 before to 20 after (a nucleus is too
// small to see at first); dissolutions: the frame before the reported
// one, 15 before to 2 after (a shrinking particle is under the noise
// before it is gone).
func nearEvent(where map[[2]int]simParticle, back, before, after int) func(simEvent, movie.Event) bool {
	return func(e simEvent, m movie.Event) bool {
		p, ok := where[[2]int{e.ID, m.Frame - back}]
		return ok && m.Frame >= e.Frame-before && m.Frame <= e.Frame+after && math.Hypot(m.X-p.X, m.Y-p.Y) <= math.Max(5, p.R)
	}
}

// hiddenBy reports whether p's centre lies on a larger particle: in
// projection the two are one blob (scored apart from the recall).
func hiddenBy(p simParticle, parts []simParticle) bool {
	for _, q := range parts {
		if q.ID != p.ID && q.R >= p.R && math.Hypot(q.X-p.X, q.Y-p.Y) < q.R {
			return true
		}
	}
	return false
}

// median is the middle of v (0 for none).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

package movie_test

import (
	"os"
	"testing"

	"github.com/picoflow/picoflow/internal/analysis/movie"
	"github.com/picoflow/picoflow/internal/analysis/movie/yolo"
)

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
// Eighteen sets of seven movies (independentSets): those the tracker was
// tuned on (seeds 11-13, then 21-24), seven it was not tuned on but
// changes were made after looking at (111-124), seven no change was made
// after looking at, whose totals were read while choosing constants
// (211-224), seven made later, scored before and after three changes
// without a look (311-324), seven made after a later change, scored before
// and after it and after two more and not looked at (411-424), and seven
// in which some particles dissolve (511-524), the same sizes: what the
// tuning is worth on movies it has not seen (see each). All six were
// looked at, switch by switch, before fillHidden and massWeight; two sets
// made after the first (611-624, and 711-724 with dissolution) were scored
// once with and once without it (711-724's switches since looked at, no
// change made from them); two made after massWeight (811-824, 911-924 with
// dissolution) and two after the later merge (1011-1024, 1111-1124 with
// dissolution), each scored before and after it; two after the recent mean
// position (1211-1224, 1311-1324 with dissolution), scored before and
// after it; two after partAgain (1411-1424, 1511-1524 with dissolution),
// scored without and with it; two after its unit tests (1611-1624,
// 1711-1724 with dissolution), scored once.
// ONLY=seed runs that movie alone (DBG=1 lists the switches, DBG=2 with
// the detections around each, DBG=5 each switched particle's tracks in
// runs, DBG=6 the false detections; TRACKS=id,id lists those tracks'
// points, NEAR=frame,x,y the detections and particles there).
func TestIndependentMovies(t *testing.T) {
	t.Parallel()
	for _, set := range independentSets {
		t.Run(set.name, func(t *testing.T) { scoreMovies(t, set.seeds, set.want) })
	}
}

// independentSet is a set of independent movies: its name, its seeds and
// what it is guarded at.
type independentSet struct {
	name  string
	seeds []int
	want  expected
}

// independentSets are the sets of independent movies scored (see
// TestIndependentMovies), each with its history and what it is guarded at.
var independentSets = []independentSet{
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
	// A blob already shared, shared again (fillHidden): the same (9 switches).
	{"tuned", sevenMovies(0), expected{fp: 50, switches: 1.1, merges: 0.8}},
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
	// A blob already shared, shared again (fillHidden): 17 -> 13 switches.
	{"held-out", sevenMovies(1), expected{fp: 45, switches: 1.5, merges: 0.8}},
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
	// A blob already shared, shared again (fillHidden): 8 -> 6 switches.
	{"held-out-2", sevenMovies(2), expected{fp: 45, switches: 0.8, merges: 0.85}},
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
	// A blob already shared, shared again (fillHidden): the same (11 switches).
	{"held-out-3", sevenMovies(3), expected{fp: 100, switches: 1.6, merges: 0.8}},
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
	// A blob already shared, shared again (fillHidden): the same (7 switches).
	{"held-out-4", sevenMovies(4), expected{fp: 70, switches: 1.7, merges: 0.8}},
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
	// A blob already shared, shared again (fillHidden): the same (11 switches).
	{"dissolving", sevenMovies(5), expected{fp: 55, switches: 1.8, merges: 0.8}},
	// Made after fillHidden was chosen on the six sets above (gaps of
	// up to 4 frames; 10 gave the dissolving set 21 switches, not 17)
	// and scored once with it and once without: 1.59 switches per 100
	// (15; 3 over 634 above the noise) against 2.01 (19), 20 false
	// detections (18 without), 42 of 44 merges (42 of 49 claimed true)
	// both ways. Scored a third time after massWeight (chosen on the
	// six sets above): 1.38 per 100 (13), the rest the same.
	// A blob already shared, shared again (fillHidden): 12 -> 10 switches.
	{"held-out-5", sevenMovies(6), expected{fp: 30, switches: 1.2, merges: 0.9}},
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
	// A blob already shared, shared again (fillHidden): 17 -> 15 switches.
	{"dissolving-2", sevenMovies(7), expected{fp: 70, switches: 1.8, merges: 0.85}},
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
	// A blob already shared, shared again (fillHidden): 9 -> 7 switches.
	{"held-out-6", sevenMovies(8), expected{fp: 55, switches: 1.0, merges: 0.8}},
	// Made with held-out-6 and scored before and after the later
	// merge, not looked at (its totals read for the change's last
	// form): 1.06 switches per 100 (10) before, 1.17 (11) after; 40
	// false detections; 37 of 44 merges both ways; 65 of 71
	// dissolutions (65 of the 73 claimed true) both ways.
	// A blob already shared, shared again (fillHidden): the same (6 switches).
	{"dissolving-3", sevenMovies(9), expected{fp: 55, switches: 1.4, merges: 0.8}},
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
	// A blob already shared, shared again (fillHidden): the same (15 switches).
	{"held-out-7", sevenMovies(10), expected{fp: 60, switches: 2.2, merges: 0.85}},
	// Made and scored as held-out-7 was, with particles that
	// dissolve: 1.08 switches per 100 (10) both ways, 75 false
	// detections, 41 of 44 merges (41 of 47 claimed true), 61 of 71
	// dissolutions (61 of the 75 claimed true) both ways; 41 of 42
	// nucleations. (Its false dissolutions were listed once, to find
	// why a first form of the change had lost a merge here and made
	// two more: it had asked the survivor to be round in the frame
	// after the end too.)
	// After the recent mean position (whereNow): 16 switches (1.73).
	// A blob already shared, shared again (fillHidden): 12 -> 8 switches.
	{"dissolving-4", sevenMovies(11), expected{fp: 90, switches: 1.1, merges: 0.85}},
	// Made after the recent mean position (whereNow) and scored once
	// with the tracker before it and once after, not looked at: 12
	// switches (1.28 per 100) before, 7 (0.75) after; 74 and 70 false
	// detections; 39 of 44 merges both ways; 41 of 42 nucleations.
	// A blob already shared, shared again (fillHidden): the same (8 switches).
	{"held-out-8", sevenMovies(12), expected{fp: 100, switches: 1.0, merges: 0.85}},
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
	// (2.36 per 100), 164 over the fourteen sets against 175 (on the
	// two blind sets made after it, held-out-9 and dissolving-6, 18
	// with it against 16 without).
	// A blob already shared, shared again (fillHidden): 22 -> 20 switches.
	{"dissolving-5", sevenMovies(13), expected{fp: 110, switches: 2.3, merges: 0.85}},
	// Made after partAgain, scored once without it and once with it,
	// not looked at: 8 switches (0.85 per 100) without, 10 (1.07)
	// with; 40 false detections both ways, 42 of 44 merges.
	// A blob already shared, shared again (fillHidden): the same (10 switches).
	{"held-out-9", sevenMovies(14), expected{fp: 50, switches: 1.2, merges: 0.85}},
	// Made and scored as held-out-9, with particles that dissolve: 8
	// switches (0.86) both ways, 40 false detections, 40 of 44
	// merges, 67 of 71 dissolutions; 34 of 42 nucleations both ways.
	// A blob already shared, shared again (fillHidden): 8 -> 6 switches.
	{"dissolving-6", sevenMovies(15), expected{fp: 50, switches: 0.8, merges: 0.85}},
	// Made after partAgain's unit tests and the table of sets, scored
	// with the tracker as it stood and after fillHidden's shared blobs
	// (the same both ways), not looked at: 8 switches (0.85
	// per 100), 11 false detections, 39 of 44 merges, 38 of 42
	// nucleations (8 dissolutions claimed, none happens).
	{"held-out-10", sevenMovies(16), expected{fp: 25, switches: 1.0, merges: 0.85}},
	// Made and scored as held-out-10 (the same both ways), with
	// particles that dissolve: 7
	// switches (0.74 per 100), 21 false detections, 41 of 44 merges, 39
	// of 42 nucleations, 64 of 71 dissolutions.
	{"dissolving-7", sevenMovies(17), expected{fp: 35, switches: 0.9, merges: 0.85}},
}

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
	for _, set := range independentSets {
		s := scoreSeeds(t, set.seeds, detector)
		t.Logf("YOLO %s, %s movies: precision %.3f (%d true, %d false); recall r >= 3 px %.3f, 2-3 px %.3f, 1.5-2 px %.3f; %.2f switches per 100 tracks; %d of %d merges",
			model, set.name, float64(s.tp)/float64(max(s.tp+s.fp, 1)), s.tp, s.fp,
			float64(s.bins[0].tp)/float64(max(s.bins[0].n, 1)), float64(s.bins[1].tp)/float64(max(s.bins[1].n, 1)), float64(s.bins[2].tp)/float64(max(s.bins[2].n, 1)),
			100*float64(s.switches)/float64(max(s.tracks, 1)), s.found, s.merges)
	}
}

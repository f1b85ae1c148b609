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
	// detection within reach; the others and the free detections are
	// matched by the least total distance among the most pairs within reach
	// (the Hungarian method). A switch is a true particle matched to another
	// track than the last one it had.
	lastTrack := map[int]int{}
	for f, parts := range truth.Truth {
		dets := res.Detections[f]
		sort.Slice(parts, func(i, j int) bool { return parts[i].R > parts[j].R })
		reach := func(p simParticle) float64 { return math.Max(3, p.R) }
		match := matchFrame(parts, dets, lastTrack, reach)
		for i, p := range parts {
			where[[2]int{p.ID, f}] = p
			best := match[i]
			hidden := hiddenBy(p, parts)
			if best >= 0 {
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
		used := make([]bool, len(dets))
		for _, j := range match {
			if j >= 0 {
				used[j] = true
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

// matchFrame matches the true particles of a frame to its detections as
// CLEAR MOT does: a particle first keeps the track it had (lastTrack) if a
// detection of that track is within reach; the particles and detections
// left are then paired by the least total distance among the most pairs
// within reach: first the particles in view, then those hidden inside a
// larger one's projection (hiddenBy), so that a blob two particles make
// goes to the one seen. It returns the detection of each particle (-1:
// none).
func matchFrame(parts []simParticle, dets []movie.Detection, lastTrack map[int]int, reach func(simParticle) float64) []int {
	match := make([]int, len(parts))
	used := make([]bool, len(dets))
	for i, p := range parts {
		match[i] = -1
		last, ok := lastTrack[p.ID]
		if !ok {
			continue
		}
		for j, d := range dets {
			if !used[j] && d.Track == last && math.Hypot(d.X-p.X, d.Y-p.Y) <= reach(p) {
				used[j], match[i] = true, j
				break
			}
		}
	}
	for _, hidden := range []bool{false, true} {
		var rows []int
		for i, p := range parts {
			if match[i] < 0 && hiddenBy(p, parts) == hidden {
				rows = append(rows, i)
			}
		}
		pairLeast(parts, dets, rows, used, match, reach)
	}
	for i, p := range parts {
		if match[i] >= 0 {
			lastTrack[p.ID] = dets[match[i]].Track
		}
	}
	return match
}

// pairLeast pairs the rows (particles) with the free detections by the
// least total distance among the most pairs within reach, in groups linked
// by pairs within reach (each small), and marks what it pairs.
func pairLeast(parts []simParticle, dets []movie.Detection, rows []int, used []bool, match []int, reach func(simParticle) float64) {
	near := map[int][]int{} // row -> free detections within reach
	for _, i := range rows {
		p := parts[i]
		for j, d := range dets {
			if !used[j] && math.Abs(d.X-p.X) <= reach(p) && math.Hypot(d.X-p.X, d.Y-p.Y) <= reach(p) {
				near[i] = append(near[i], j)
			}
		}
	}
	const far = 1e6 // the cost of a pair out of reach
	done := map[int]bool{}
	for _, start := range rows {
		if done[start] || len(near[start]) == 0 {
			continue
		}
		// The group of start: rows and detections linked through pairs.
		group, cols, colAt := []int{start}, []int{}, map[int]int{}
		done[start] = true
		for k := 0; k < len(group); k++ {
			for _, j := range near[group[k]] {
				if _, ok := colAt[j]; ok {
					continue
				}
				colAt[j] = len(cols)
				cols = append(cols, j)
				for _, i := range rows {
					if !done[i] && slices.Contains(near[i], j) {
						done[i] = true
						group = append(group, i)
					}
				}
			}
		}
		cost := make([][]float64, len(group))
		for r, i := range group {
			cost[r] = make([]float64, len(cols))
			for c := range cost[r] {
				cost[r][c] = far
			}
			for _, j := range near[i] {
				cost[r][colAt[j]] = math.Hypot(dets[j].X-parts[i].X, dets[j].Y-parts[i].Y)
			}
		}
		for r, c := range minCostAssignment(cost) {
			if c >= 0 && cost[r][c] < far {
				match[group[r]], used[cols[c]] = cols[c], true
			}
		}
	}
}

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

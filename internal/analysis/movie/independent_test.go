package movie_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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

// TestIndependentMovies scores the classical detector on movies from an
// independent image model (testdata/moviesim.py: projected spheres, faceted
// and raft particles on a textured film, scan-line and shot noise, current
// jumps, drift, Brownian motion, nucleation, touching pairs, coalescence).
// It guards today's levels; issue 17's targets (precision >= 0.97, recall
// >= 0.99 for r >= 3 px, >= 0.95 for 2-3 px, >= 0.8 for 1.5-2 px where the
// local SNR >= 5) are what the detector must reach next.
func TestIndependentMovies(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const frames, size = 40, 256
	prefix := filepath.Join(dir, "m")
	if out, err := exec.Command("/usr/bin/python3", "testdata/moviesim.py", "11", "40", "256", prefix).CombinedOutput(); err != nil {
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
	var truth struct{ Truth [][]simParticle }
	b, _ := os.ReadFile(prefix + ".json")
	if err := json.Unmarshal(b, &truth); err != nil {
		t.Fatal(err)
	}
	res, err := movie.Analyze(context.Background(), rawFrames{data, size, size}, frames, size, size, dir, movie.Options{NoVideo: true, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	bins := []struct {
		name   string
		lo, hi float64
		tp, n  int
	}{{name: "r >= 3 px", lo: 3, hi: 99}, {name: "2-3 px", lo: 2, hi: 3}, {name: "1.5-2 px", lo: 1.5, hi: 2}}
	var tp, fp int
	for f, parts := range truth.Truth {
		dets := res.Detections[f]
		used := make([]bool, len(dets))
		sort.Slice(parts, func(i, j int) bool { return parts[i].R > parts[j].R })
		for _, p := range parts {
			best, bd := -1, math.Max(3, p.R)
			for j, d := range dets {
				if dd := math.Hypot(d.X-p.X, d.Y-p.Y); !used[j] && dd <= bd {
					best, bd = j, dd
				}
			}
			if best >= 0 {
				used[best] = true
				tp++
			}
			for k := range bins {
				if p.SNR >= 5 && p.R >= bins[k].lo && p.R < bins[k].hi {
					bins[k].n++
					if best >= 0 {
						bins[k].tp++
					}
				}
			}
		}
		for _, u := range used {
			if !u {
				fp++
			}
		}
	}
	precision := float64(tp) / float64(max(tp+fp, 1))
	t.Logf("precision %.3f (%d true, %d false detections over %d frames)", precision, tp, fp, frames)
	recall := map[string]float64{}
	for _, bn := range bins {
		recall[bn.name] = float64(bn.tp) / float64(max(bn.n, 1))
		t.Logf("recall %s (local SNR >= 5): %.3f of %d", bn.name, recall[bn.name], bn.n)
	}
	// Today's levels (measured: precision 0.938; recall 0.890, 0.585 and 0
	// for r >= 3, 2-3 and 1.5-2 px), minus a margin: a guard until the next
	// detector raises them to issue 17's targets.
	if precision < 0.90 || recall["r >= 3 px"] < 0.85 || recall["2-3 px"] < 0.50 {
		t.Errorf("below today's levels: precision %.3f, recall %v", precision, recall)
	}
}

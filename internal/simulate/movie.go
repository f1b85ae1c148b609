package simulate

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/scigolib/hdf5"
)

// MovieSpec describes a synthetic HAADF movie of moving particles.
type MovieSpec struct {
	Frames, Width, Height int
	Particles             int
	// Sigma is the particle radius (Gaussian sigma) in pixels. Defaults to 4.
	Sigma float64
	// Noise is the Gaussian noise sigma relative to the particle amplitude.
	// Defaults to 0.1.
	Noise float64
	// Drift is the stage drift in pixels per frame (both axes). Defaults to
	// 0.05; negative means none.
	Drift       float64
	FrameTime   float64 // s; defaults to 0.1
	Seed        uint64
	Acquisition Acquisition
}

// Track is the ground-truth trajectory of one particle: positions per frame.
type Track struct {
	ID int       `json:"id"`
	X  []float64 `json:"x"`
	Y  []float64 `json:"y"`
	On []bool    `json:"visible"`
}

// MovieTruth is the ground truth written beside a movie.
type MovieTruth struct {
	Kind   string  `json:"kind"`
	Frames int     `json:"frames"`
	Width  int     `json:"width"`
	Height int     `json:"height"`
	Sigma  float64 `json:"sigma"`
	Tracks []Track `json:"tracks"`
	// Counts is the number of visible particles in each frame.
	Counts []int `json:"counts"`
}

// WriteMovie writes a Velox image stack of float64 frames (the paper's
// spatiotemporal data) and its ground truth.
func WriteMovie(ctx context.Context, path string, spec MovieSpec) (*MovieTruth, error) {
	acq := spec.Acquisition.withDefaults()
	t, w, h := spec.Frames, spec.Width, spec.Height
	if t <= 0 || w <= 0 || h <= 0 || int64(t)*int64(w)*int64(h) > 1<<31 {
		return nil, fmt.Errorf("simulate: movie %d×%d×%d out of range", t, h, w)
	}
	if spec.Sigma == 0 {
		spec.Sigma = 4
	}
	if spec.Noise == 0 {
		spec.Noise = 0.1
	}
	if spec.FrameTime == 0 {
		spec.FrameTime = 0.1
	}
	if spec.Particles == 0 {
		spec.Particles = 20
	}
	if spec.Drift == 0 {
		spec.Drift = 0.05
	}
	drift := max(spec.Drift, 0)
	rng := rand.New(rand.NewPCG(spec.Seed, 0x600d))
	truth := &MovieTruth{Kind: "movie", Frames: t, Width: w, Height: h, Sigma: spec.Sigma, Counts: make([]int, t)}
	margin := 3*spec.Sigma + drift*float64(t)
	// Particles touch but do not overlap: centres stay 2.2 sigma apart (they
	// sit on a support film; in projection they meet, not pass through).
	minSep := 2.2 * spec.Sigma
	type pos struct{ x, y float64 }
	cur := make([]pos, spec.Particles)
	appear := make([]int, spec.Particles)
	placed := 0
	tooClose := func(i int, p pos) bool {
		for j := range cur[:placed] {
			if j == i {
				continue
			}
			if math.Hypot(p.x-cur[j].x, p.y-cur[j].y) < minSep {
				return true
			}
		}
		return false
	}
	for i := range cur {
		for try := 0; ; try++ {
			p := pos{margin + rng.Float64()*(float64(w)-2*margin), margin + rng.Float64()*(float64(h)-2*margin)}
			if !tooClose(i, p) || try > 1000 {
				cur[i] = p
				placed++
				break
			}
		}
		// A quarter of the particles appear part-way through the movie.
		if i%4 == 3 {
			appear[i] = rng.IntN(max(1, t/2))
		}
	}
	tracks := make([]Track, spec.Particles)
	for i := range tracks {
		tracks[i] = Track{ID: i, X: make([]float64, t), Y: make([]float64, t), On: make([]bool, t)}
	}
	for f := 0; f < t; f++ {
		for i := range cur {
			next := pos{clamp(cur[i].x+rng.NormFloat64()*0.7, margin, float64(w)-margin), clamp(cur[i].y+rng.NormFloat64()*0.7, margin, float64(h)-margin)}
			if !tooClose(i, next) {
				cur[i] = next
			}
			tr := &tracks[i]
			// The whole field drifts with the stage.
			tr.X[f], tr.Y[f], tr.On[f] = cur[i].x+drift*float64(f), cur[i].y+drift*float64(f), f >= appear[i]
			if tr.On[f] {
				truth.Counts[f]++
			}
		}
	}
	truth.Tracks = tracks
	raw := make([]byte, 8*t*w*h)
	frame := make([]float64, w*h)
	r := int(math.Ceil(3 * spec.Sigma))
	for f := 0; f < t; f++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for i := range frame {
			frame[i] = 0.2 + spec.Noise*rng.NormFloat64()
		}
		for _, tr := range truth.Tracks {
			if !tr.On[f] {
				continue
			}
			cx, cy := tr.X[f], tr.Y[f]
			for y := max(0, int(cy)-r); y <= min(h-1, int(cy)+r); y++ {
				for x := max(0, int(cx)-r); x <= min(w-1, int(cx)+r); x++ {
					dx, dy := float64(x)-cx, float64(y)-cy
					frame[y*w+x] += math.Exp(-(dx*dx + dy*dy) / (2 * spec.Sigma * spec.Sigma))
				}
			}
		}
		// Velox order (H, W, F): the frame index runs fastest.
		for i, v := range frame {
			binary.LittleEndian.PutUint64(raw[8*(i*t+f):], math.Float64bits(v*1000))
		}
	}
	md := veloxMetadata(acq, "HAADF", 0.5e-9, w, h, spec.FrameTime)
	vw, err := newVeloxWriter(path)
	if err != nil {
		return nil, err
	}
	if _, err := vw.image("HAADF", hdf5.Float64, raw, h, w, t, md); err != nil {
		vw.Close()
		return nil, err
	}
	if err := vw.Close(); err != nil {
		return nil, fmt.Errorf("simulate: close %s: %w", path, err)
	}
	return truth, writeTruth(path, truth)
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

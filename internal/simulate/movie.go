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
	Noise       float64
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
	rng := rand.New(rand.NewPCG(spec.Seed, 0x600d))
	truth := &MovieTruth{Kind: "movie", Frames: t, Width: w, Height: h, Sigma: spec.Sigma, Counts: make([]int, t)}
	margin := 3 * spec.Sigma
	for i := 0; i < spec.Particles; i++ {
		tr := Track{ID: i, X: make([]float64, t), Y: make([]float64, t), On: make([]bool, t)}
		x := margin + rng.Float64()*(float64(w)-2*margin)
		y := margin + rng.Float64()*(float64(h)-2*margin)
		// A quarter of the particles appear part-way through the movie.
		appear := 0
		if i%4 == 3 {
			appear = rng.IntN(max(1, t/2))
		}
		for f := 0; f < t; f++ {
			x = clamp(x+rng.NormFloat64()*0.7, margin, float64(w)-margin)
			y = clamp(y+rng.NormFloat64()*0.7, margin, float64(h)-margin)
			tr.X[f], tr.Y[f], tr.On[f] = x, y, f >= appear
			if tr.On[f] {
				truth.Counts[f]++
			}
		}
		truth.Tracks = append(truth.Tracks, tr)
	}
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

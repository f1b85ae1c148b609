package movie_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/picoflow/picoflow/internal/analysis/movie"
)

// cycled serves pre-rendered noisy HAADF-like frames in a cycle, so the
// benchmark times scaling, detection and encoding, not the simulator.
type cycled struct {
	frames [][]float64
}

func newCycled(n, h, w, particles int) *cycled {
	rng := rand.New(rand.NewPCG(1, 2))
	c := &cycled{}
	type p struct{ x, y float64 }
	ps := make([]p, particles)
	for i := range ps {
		ps[i] = p{20 + rng.Float64()*float64(w-40), 20 + rng.Float64()*float64(h-40)}
	}
	for range n {
		f := make([]float64, h*w)
		for i := range f {
			f[i] = 200 + 100*rng.NormFloat64()
		}
		for i := range ps {
			ps[i].x += rng.NormFloat64()
			ps[i].y += rng.NormFloat64()
			for y := int(ps[i].y) - 12; y <= int(ps[i].y)+12; y++ {
				for x := int(ps[i].x) - 12; x <= int(ps[i].x)+12; x++ {
					if x >= 0 && y >= 0 && x < w && y < h {
						dx, dy := float64(x)-ps[i].x, float64(y)-ps[i].y
						f[y*w+x] += 1000 * math.Exp(-(dx*dx+dy*dy)/32)
					}
				}
			}
		}
		c.frames = append(c.frames, f)
	}
	return c
}

func (c *cycled) Read(_ context.Context, t int, dst []float64) error {
	copy(dst, c.frames[t%len(c.frames)])
	return nil
}

// BenchmarkMovie600x1024: 600 frames of 1024×1024 float64 to MP4 plus
// detection, tracking and measurements (issue 17: under 20 s on 2 cores).
// go test -run '^$' -bench Movie600 -benchtime 1x ./internal/analysis/movie
func BenchmarkMovie600x1024(b *testing.B) {
	src := newCycled(10, 1024, 1024, 40)
	for b.Loop() {
		res, err := movie.Analyze(context.Background(), src, 600, 1024, 1024, b.TempDir(), movie.Options{AnnotatedSize: -1})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.MeanCount(), "particles/frame")
		b.ReportMetric(res.DetectTime.Seconds(), "detect-cpu-s")
	}
}

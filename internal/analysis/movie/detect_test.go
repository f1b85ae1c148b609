package movie_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/picoflow/picoflow/internal/analysis/movie"
)

// TestDetectOddFrames: frames of any shape, flat, noisy or with
// non-finite values are detected without a panic, and a flat or pure-noise
// frame has (almost) no particles.
func TestDetectOddFrames(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var d movie.Detector
	for _, sz := range [][2]int{{1, 1}, {2, 5}, {7, 3}, {64, 1}, {1, 64}, {65, 65}, {130, 67}, {300, 300}} {
		w, h := sz[0], sz[1]
		flat := make([]float64, w*h)
		noise := make([]float64, w*h)
		odd := make([]float64, w*h)
		for i := range noise {
			noise[i] = 100 + 10*rng.NormFloat64()
			odd[i] = noise[i]
			if i%7 == 0 {
				odd[i] = math.NaN()
			}
			if i%11 == 0 {
				odd[i] = math.Inf(1)
			}
		}
		if n := len(d.Detect(flat, w, h, 0)); n != 0 {
			t.Errorf("%dx%d flat: %d particles", w, h, n)
		}
		if n := len(d.Detect(noise, w, h, 0)); n > 1 {
			t.Errorf("%dx%d noise: %d particles", w, h, n)
		}
		d.Detect(odd, w, h, 0)
	}
}

package movie_test

import (
	"testing"

	"github.com/picoflow/picoflow/internal/analysis/movie"
)

// BenchmarkDetect1024 times scaling and detection of one 1024×1024 frame.
func BenchmarkDetect1024(b *testing.B) {
	src := newCycled(4, 1024, 1024, 40)
	var d movie.Detector
	var sc movie.Scaler
	gray := make([]uint8, 1024*1024)
	i := 0
	for b.Loop() {
		f := src.frames[i%4]
		sc.Scale(f, gray)
		d.DetectGray(gray, 1024, 1024, i)
		i++
	}
}

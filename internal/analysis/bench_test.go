package analysis_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/simulate"
)

// BenchmarkRunSpectrumImage times the whole analysis of a simulated
// 256×256 spectrum image (23 MB; picoflow bench runs the paper's 91 MB
// file against HyperSpy). Report: go test -bench RunSpectrumImage ./internal/analysis
func BenchmarkRunSpectrumImage(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "si.emd")
	const w = 256
	if _, err := simulate.WriteSpectrumImage(context.Background(), path, simulate.SpectrumImageSpec{
		Width: w, Height: w, Support: "C", Elements: []string{"Fe", "Cu", "Au"},
		CountsPerPixel: simulate.CountsForSize(23<<20, w, w), Seed: 1,
	}); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := analysis.Run(context.Background(), path, filepath.Join(dir, "out"), analysis.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

package movie_test

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"testing"

	"github.com/picoflow/picoflow/internal/analysis/movie"
)

func TestZZFigs(t *testing.T) {
	out := "/tmp/figs"
	os.MkdirAll(out, 0o755)
	if b, err := exec.Command("/usr/bin/python3", "testdata/moviesim.py", "12", "60", "512", out+"/m").CombinedOutput(); err != nil {
		t.Fatal(err, string(b))
	}
	raw, _ := os.ReadFile(out + "/m.f64")
	data := make([]float64, len(raw)/8)
	for i := range data {
		data[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	res, err := movie.Analyze(context.Background(), rawFrames{data, 512, 512}, 60, 512, 512, out, movie.Options{Calibration: movie.Calibration{PixelSize: 0.2, PixelUnits: "nm", FrameTime: 0.05}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res.Stats)
}

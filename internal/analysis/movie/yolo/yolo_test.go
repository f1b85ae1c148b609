package yolo_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/picoflow/picoflow/internal/analysis/movie"
	"github.com/picoflow/picoflow/internal/analysis/movie/yolo"
	"github.com/picoflow/picoflow/internal/analysis/movie/yolo/yolotest"
	"github.com/picoflow/picoflow/internal/emd"
	"github.com/picoflow/picoflow/internal/simulate"
)

// library finds libonnxruntime: $ONNXRUNTIME_LIB, else the script's cache
// (fetching it if needed). A missing runtime fails the test.
func library(t *testing.T) string {
	if p := os.Getenv(yolo.LibraryEnv); p != "" {
		return p
	}
	out, err := exec.Command("../../../../scripts/fetch-onnxruntime.sh").Output()
	if err != nil {
		t.Fatalf("ONNX Runtime library: set %s or run scripts/fetch-onnxruntime.sh: %v", yolo.LibraryEnv, err)
	}
	return strings.TrimSpace(string(out))
}

// TestBlobNetThroughONNXRuntime runs a generated YOLOv8-format model in the
// real ONNX Runtime over a simulated movie: letterbox, inference, decoding
// and NMS must find the particles.
func TestBlobNetThroughONNXRuntime(t *testing.T) {
	lib := library(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "blobnet.onnx")
	if err := yolotest.BlobNet(model); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "movie.emd")
	truth, err := simulate.WriteMovie(context.Background(), path, simulate.MovieSpec{Frames: 20, Width: 200, Height: 160, Particles: 10, Seed: 5, Sigma: 4})
	if err != nil {
		t.Fatal(err)
	}
	f, err := emd.Open(context.Background(), path, emd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, _ := f.Signal(emd.KindImageStack)
	fr, err := f.Frames(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	res, err := movie.Analyze(context.Background(), fr, fr.Frames, fr.H, fr.W, dir, movie.Options{NoVideo: true,
		NewDetector: func() (movie.FrameDetector, error) { return yolo.New(yolo.Config{Model: model, Library: lib}) }})
	if err != nil {
		t.Fatal(err)
	}
	boxes := make([][]movie.Box, truth.Frames)
	for _, tr := range truth.Tracks {
		for k := range truth.Frames {
			if tr.On[k] {
				boxes[k] = append(boxes[k], movie.Box{X: tr.X[k], Y: tr.Y[k], W: 16, H: 16})
			}
		}
	}
	sc := movie.Evaluate(res.Detections, boxes, 3)
	t.Logf("BlobNet via ONNX Runtime: precision %.3f recall %.3f mAP50 %.3f (TP %d FP %d FN %d)", sc.Precision, sc.Recall, sc.MAP50, sc.TP, sc.FP, sc.FN)
	if sc.Precision < 0.9 || sc.Recall < 0.9 {
		t.Errorf("precision %.3f recall %.3f, want >= 0.9", sc.Precision, sc.Recall)
	}
}

func TestRejectsWrongModels(t *testing.T) {
	lib := library(t)
	if _, err := yolo.New(yolo.Config{Model: "/nonexistent.onnx", Library: lib}); err == nil {
		t.Fatal("missing model accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.onnx")
	os.WriteFile(bad, []byte("not a model"), 0o644)
	if _, err := yolo.New(yolo.Config{Model: bad, Library: lib}); err == nil || errors.Is(err, yolo.ErrNoRuntime) {
		t.Fatalf("garbage model: %v", err)
	}
}

// Package yolo runs YOLOv8-style ONNX detectors (ultralytics exports:
// images 1×3×640×640 in, output0 1×(4+classes)×8400 out) through ONNX
// Runtime: letterbox to 640×640, inference, confidence threshold, and
// non-maximum suppression, giving the same detections as the classical
// detector. The ONNX Runtime library (libonnxruntime.so from the npm package
// onnxruntime-node; scripts/fetch-onnxruntime.sh) is loaded at run time.
package yolo

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/picoflow/picoflow/internal/analysis/movie"
)

// LibraryEnv names the environment variable holding the ONNX Runtime
// library path.
const LibraryEnv = "ONNXRUNTIME_LIB"

// ErrNoRuntime means the ONNX Runtime library could not be loaded.
var ErrNoRuntime = errors.New("ONNX Runtime library not available (set " + LibraryEnv + "; scripts/fetch-onnxruntime.sh fetches it)")

const size = 640

var (
	initOnce sync.Once
	initErr  error
)

// initRuntime loads the library once per process.
func initRuntime(lib string) error {
	initOnce.Do(func() {
		if lib == "" {
			lib = os.Getenv(LibraryEnv)
		}
		if lib == "" {
			initErr = ErrNoRuntime
			return
		}
		if _, err := os.Stat(lib); err != nil {
			initErr = fmt.Errorf("%w: %w", ErrNoRuntime, err)
			return
		}
		ort.SetSharedLibraryPath(lib)
		if err := ort.InitializeEnvironment(); err != nil {
			initErr = fmt.Errorf("%w: %w", ErrNoRuntime, err)
		}
	})
	return initErr
}

// Config configures a Detector.
type Config struct {
	// Model is the .onnx file.
	Model string
	// Library is libonnxruntime.so (default: $ONNXRUNTIME_LIB).
	Library string
	// Confidence is the score threshold (default 0.25, the paper's).
	Confidence float64
	// IoU is the NMS overlap threshold (default 0.7, ultralytics').
	IoU float64
	// Threads for one inference (default 1: the movie pipeline already runs
	// one detector per core).
	Threads int
}

// Detector is one ONNX Runtime session with its tensors; use one per
// goroutine.
type Detector struct {
	cfg     Config
	session *ort.AdvancedSession
	in      *ort.Tensor[float32]
	out     *ort.Tensor[float32]
	classes int
}

var _ interface {
	DetectGray(gray []uint8, w, h, index int) []movie.Detection
} = (*Detector)(nil)

// New loads the model.
func New(cfg Config) (*Detector, error) {
	if err := initRuntime(cfg.Library); err != nil {
		return nil, err
	}
	if cfg.Confidence == 0 {
		cfg.Confidence = 0.25
	}
	if cfg.IoU == 0 {
		cfg.IoU = 0.7
	}
	if cfg.Threads == 0 {
		cfg.Threads = 1
	}
	ins, outs, err := ort.GetInputOutputInfo(cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("yolo model %s: %w", cfg.Model, err)
	}
	if len(ins) != 1 || len(outs) != 1 {
		return nil, fmt.Errorf("yolo model %s: want one input and one output, have %d and %d", cfg.Model, len(ins), len(outs))
	}
	ish, osh := ins[0].Dimensions, outs[0].Dimensions
	if len(ish) != 4 || ish[1] != 3 || ish[2] != size || ish[3] != size || len(osh) != 3 || osh[1] < 5 || osh[2] != 8400 {
		return nil, fmt.Errorf("yolo model %s: input %v, output %v; want 1×3×640×640 and 1×(4+classes)×8400 (a YOLOv8/YOLO11 export)", cfg.Model, ish, osh)
	}
	d := &Detector{cfg: cfg, classes: int(osh[1]) - 4}
	if d.in, err = ort.NewEmptyTensor[float32](ort.NewShape(1, 3, size, size)); err != nil {
		return nil, fmt.Errorf("yolo: %w", err)
	}
	if d.out, err = ort.NewEmptyTensor[float32](ort.NewShape(1, osh[1], 8400)); err != nil {
		d.in.Destroy()
		return nil, fmt.Errorf("yolo: %w", err)
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("yolo: %w", err)
	}
	defer opts.Destroy()
	opts.SetIntraOpNumThreads(cfg.Threads)
	opts.SetInterOpNumThreads(1)
	if d.session, err = ort.NewAdvancedSession(cfg.Model, []string{ins[0].Name}, []string{outs[0].Name},
		[]ort.Value{d.in}, []ort.Value{d.out}, opts); err != nil {
		d.Close()
		return nil, fmt.Errorf("yolo model %s: %w", cfg.Model, err)
	}
	return d, nil
}

// Close releases the session and tensors.
func (d *Detector) Close() error {
	if d.session != nil {
		d.session.Destroy()
	}
	if d.in != nil {
		d.in.Destroy()
	}
	if d.out != nil {
		d.out.Destroy()
	}
	return nil
}

// DetectGray letterboxes an 8-bit frame into the model input (grey
// replicated to RGB, padding 114 as ultralytics does), runs the model and
// decodes its boxes back to frame pixels.
func (d *Detector) DetectGray(gray []uint8, w, h, index int) []movie.Detection {
	r, padX, padY := letterbox(gray, w, h, d.in.GetData())
	if err := d.session.Run(); err != nil {
		return nil
	}
	out := d.out.GetData()
	const n = 8400
	var cands []movie.Detection
	for a := range n {
		best := float32(0)
		for c := range d.classes {
			best = max(best, out[(4+c)*n+a])
		}
		if float64(best) < d.cfg.Confidence {
			continue
		}
		cx, cy, bw, bh := float64(out[a]), float64(out[n+a]), float64(out[2*n+a]), float64(out[3*n+a])
		cands = append(cands, movie.Detection{Frame: index, X: (cx - padX) / r, Y: (cy - padY) / r, W: bw / r, H: bh / r, Score: float64(best), Track: -1})
	}
	return nms(cands, d.cfg.IoU)
}

// letterbox scales w×h into the 640×640 input (bilinear), centred, and
// returns the scale and padding.
func letterbox(gray []uint8, w, h int, dst []float32) (r, padX, padY float64) {
	r = min(float64(size)/float64(w), float64(size)/float64(h))
	nw, nh := int(float64(w)*r+0.5), int(float64(h)*r+0.5)
	px, py := (size-nw)/2, (size-nh)/2
	const pad = 114.0 / 255
	plane := dst[:size*size]
	for i := range plane {
		plane[i] = pad
	}
	for y := range nh {
		sy := (float64(y)+0.5)/r - 0.5
		y0 := min(max(int(sy), 0), h-1)
		y1 := min(y0+1, h-1)
		fy := float32(min(max(sy-float64(y0), 0), 1))
		row := plane[(y+py)*size+px:]
		for x := range nw {
			sx := (float64(x)+0.5)/r - 0.5
			x0 := min(max(int(sx), 0), w-1)
			x1 := min(x0+1, w-1)
			fx := float32(min(max(sx-float64(x0), 0), 1))
			top := float32(gray[y0*w+x0])*(1-fx) + float32(gray[y0*w+x1])*fx
			bot := float32(gray[y1*w+x0])*(1-fx) + float32(gray[y1*w+x1])*fx
			row[x] = (top*(1-fy) + bot*fy) / 255
		}
	}
	copy(dst[size*size:], plane)
	copy(dst[2*size*size:], plane)
	return r, float64(px), float64(py)
}

// nms keeps the best-scoring boxes, dropping any that overlaps a kept one
// by more than iou.
func nms(c []movie.Detection, iou float64) []movie.Detection {
	slices.SortStableFunc(c, func(a, b movie.Detection) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	var keep []movie.Detection
	for _, d := range c {
		ok := true
		for _, k := range keep {
			if overlap(d, k) > iou {
				ok = false
				break
			}
		}
		if ok {
			keep = append(keep, d)
			if len(keep) == 300 {
				break
			}
		}
	}
	return keep
}

func overlap(a, b movie.Detection) float64 {
	iw := min(a.X+a.W/2, b.X+b.W/2) - max(a.X-a.W/2, b.X-b.W/2)
	ih := min(a.Y+a.H/2, b.Y+b.H/2) - max(a.Y-a.H/2, b.Y-b.H/2)
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	return inter / (a.W*a.H + b.W*b.H - inter)
}

// RuntimeVersion is the version of the ONNX Runtime library loaded, or ""
// when none is.
func RuntimeVersion() string {
	if initRuntime("") != nil {
		return ""
	}
	return ort.GetVersion()
}

package emd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/picoflow/picoflow/internal/emd/superblock"
)

// Sentinel errors. Every error returned by this package wraps one of them.
var (
	// ErrFormat means the file is not a readable EMD file: corrupt,
	// truncated or not HDF5 at all.
	ErrFormat = errors.New("malformed emd file")
	// ErrNotFound means a dataset or signal the caller asked for is absent.
	ErrNotFound = errors.New("not found")
	// ErrTooLarge means a dataset exceeds the reader's size limit.
	ErrTooLarge = errors.New("dataset too large")
	// ErrUnsupported means a valid HDF5 file that is not an EMD layout this
	// package knows.
	ErrUnsupported = errors.New("unsupported emd layout")
)

// Format names the EMD dialect of a file.
type Format string

// The EMD dialects this package reads.
const (
	FormatVelox Format = "velox"
	FormatNCEM  Format = "ncem"
)

// Kind says what a signal holds.
type Kind string

// Signal kinds.
const (
	KindImage         Kind = "image"          // one 2-D frame
	KindImageStack    Kind = "image_stack"    // T×H×W frames (a movie)
	KindSpectrum      Kind = "spectrum"       // one EDS spectrum
	KindSpectrumImage Kind = "spectrum_image" // Y×X×E hyperspectral cube
	KindArray         Kind = "array"          // any other N-D array (NCEM)
)

// Axis is one calibrated axis of a signal: value(i) = Offset + i*Scale.
type Axis struct {
	Name   string  `json:"name"`
	Size   int     `json:"size"`
	Scale  float64 `json:"scale"`
	Offset float64 `json:"offset"`
	Units  string  `json:"units"`
}

// Value returns the calibrated coordinate of index i.
func (a Axis) Value(i float64) float64 { return a.Offset + i*a.Scale }

// Signal is one dataset of an EMD file with its calibration.
type Signal struct {
	// Title is the detector or display name ("HAADF", "EDS", "Ceta").
	Title string `json:"title"`
	Kind  Kind   `json:"kind"`
	// Path is the HDF5 path of the data (for spectrum images, of the first
	// SpectrumStream).
	Path string `json:"path"`
	// Axes are in C order, slowest first: (T,) Y, X for images, Y, X, E for
	// spectrum images, E for spectra.
	Axes []Axis `json:"axes"`
	// DType is the stored element type ("uint16", "float64", ...).
	DType string `json:"dtype"`
	// Metadata is the signal's own metadata: Velox frame-0 JSON, or NCEM
	// attributes.
	Metadata map[string]any `json:"-"`

	// DetectorNames names the detector of each event stream of a spectrum
	// image ("SuperXG21"), in stream order ("" where unrecorded).
	DetectorNames []string `json:"detector_names,omitempty"`
	streams       []string // SpectrumStream data paths (spectrum images)
	frames        int      // frames in the stream (spectrum images)
	chans         int      // channels per spectrum (spectrum images)
}

// Shape returns the sizes of the signal's axes.
func (s *Signal) Shape() []int {
	out := make([]int, len(s.Axes))
	for i, a := range s.Axes {
		out[i] = a.Size
	}
	return out
}

// Frames returns the number of frames recorded in a spectrum image stream.
func (s *Signal) Frames() int { return s.frames }

// Options bound what Open and the readers will do.
type Options struct {
	// MaxElements is the largest dataset, in elements, that will be read
	// into memory. Defaults to 1<<31 (16 GiB as float64).
	MaxElements int64
}

// DefaultMaxElements is the default of Options.MaxElements.
const DefaultMaxElements = int64(1) << 31

// File is an open EMD file.
type File struct {
	Path    string `json:"path"`
	Format  Format `json:"format"`
	Version string `json:"version"`
	// Software is the acquisition software and version, where recorded.
	Software string   `json:"software,omitempty"`
	Signals  []Signal `json:"signals"`
	// Meta holds file-level metadata: Velox's parsed JSON documents (Version,
	// Info, ...) or NCEM's metadata groups (microscope, sample, user, ...).
	Meta map[string]any `json:"-"`

	h *h5file
}

// Open reads the structure and metadata of an EMD file. Data is read later,
// on demand.
func Open(ctx context.Context, path string, opts Options) (*File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open emd %q: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open emd %q: %w: not a regular file", path, ErrFormat)
	}
	if _, err := superblock.Check(path, fi.Size()); err != nil {
		if errors.Is(err, superblock.ErrFormat) || errors.Is(err, superblock.ErrIncomplete) {
			err = fmt.Errorf("%w: %w", ErrFormat, err)
		}
		return nil, fmt.Errorf("open emd %q: %w", path, err)
	}
	h, err := openH5(path, fi.Size(), cmp.Or(opts.MaxElements, DefaultMaxElements))
	if err != nil {
		return nil, fmt.Errorf("open emd %q: %w", path, err)
	}
	f := &File{Path: path, h: h, Meta: map[string]any{}}
	switch {
	case h.datasets["/Version"] != nil:
		f.Format = FormatVelox
		err = f.loadVelox()
	case isNCEM(h):
		f.Format = FormatNCEM
		err = f.loadNCEM()
	default:
		err = fmt.Errorf("%w: neither Velox (/Version) nor NCEM (version_major) layout", ErrUnsupported)
	}
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("open emd %q: %w", path, err)
	}
	return f, nil
}

// Close releases the file.
func (f *File) Close() error { return f.h.Close() }

// Signal returns the first signal of the given kind.
func (f *File) Signal(k Kind) (*Signal, error) {
	for i := range f.Signals {
		if f.Signals[i].Kind == k {
			return &f.Signals[i], nil
		}
	}
	return nil, fmt.Errorf("%s signal in %q: %w", k, f.Path, ErrNotFound)
}

// ReadData reads a whole image, image stack, spectrum or NCEM array as
// float64 in the order of s.Axes. Spectrum images are read with
// SpectrumImage instead.
func (f *File) ReadData(ctx context.Context, s *Signal) ([]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.Kind == KindSpectrumImage {
		return nil, fmt.Errorf("read %s: %w: use SpectrumImage for spectrum images", s.Path, ErrUnsupported)
	}
	if f.Format == FormatVelox && s.Kind == KindImage {
		// An image that accompanies a spectrum image has one frame per scan;
		// like HyperSpy, return the first.
		return f.ReadFrame(ctx, s, 0)
	}
	v, di, err := f.h.readFloat64(s.Path)
	if err != nil {
		return nil, err
	}
	if f.Format == FormatVelox && s.Kind == KindImageStack {
		// Velox stores (H, W, F); return (F, H, W).
		if len(di.Shape) == 3 && di.Shape[2] > 1 {
			return rollFrames(v, di.Shape[0], di.Shape[1], di.Shape[2]), nil
		}
	}
	return v, nil
}

// ReadFrame reads frame t of an image or image stack as H×W float64 values.
func (f *File) ReadFrame(ctx context.Context, s *Signal, t int) ([]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.Kind != KindImage && s.Kind != KindImageStack {
		return nil, fmt.Errorf("read frame of %s: %w: not an image", s.Path, ErrUnsupported)
	}
	di, err := f.h.info(s.Path)
	if err != nil {
		return nil, err
	}
	l, ok := f.stackLayout(s, di)
	if !ok {
		if t != 0 {
			return nil, fmt.Errorf("frame %d of %s: %w", t, s.Path, ErrNotFound)
		}
		v, _, err := f.h.readFloat64(s.Path)
		return v, err
	}
	if t < 0 || t >= l.frames {
		return nil, fmt.Errorf("frame %d of %s (%d frames): %w", t, s.Path, l.frames, ErrNotFound)
	}
	if err := f.checkFrame(s, di, l); err != nil {
		return nil, err
	}
	start, count := l.slice(t)
	return f.h.readSlice(s.Path, start, count)
}

// stackLayout is how the frames of a 3-D image dataset lie in it: Velox
// stores (H, W, T), Berkeley (NCEM) a time series as (T, H, W).
type stackLayout struct {
	h, w, frames int
	timeFirst    bool // (T, H, W)
}

// stackLayout returns the layout of s's frames, whose dataset is di; false
// for a dataset that is not a 3-D stack (a 2-D image is one frame).
func (f *File) stackLayout(s *Signal, di dsInfo) (stackLayout, bool) {
	switch {
	case len(di.Shape) != 3:
		return stackLayout{}, false
	case f.Format == FormatVelox:
		return stackLayout{h: di.Shape[0], w: di.Shape[1], frames: di.Shape[2]}, true
	case s.Kind == KindImageStack:
		return stackLayout{h: di.Shape[1], w: di.Shape[2], frames: di.Shape[0], timeFirst: true}, true
	}
	return stackLayout{}, false
}

// slice is the start and count of frame t in the dataset.
func (l stackLayout) slice(t int) (start, count []uint64) {
	if l.timeFirst {
		return []uint64{uint64(t), 0, 0}, []uint64{1, uint64(l.h), uint64(l.w)}
	}
	return []uint64{0, 0, uint64(t)}, []uint64{uint64(l.h), uint64(l.w), 1}
}

// checkFrame refuses a stack whose single frame is too large to read.
func (f *File) checkFrame(s *Signal, di dsInfo, l stackLayout) error {
	frame := di
	frame.Shape = []int{l.h, l.w}
	return f.h.checkSize(s.Path, frame)
}

// rollFrames turns (H, W, F) into (F, H, W).
func rollFrames(v []float64, h, w, nf int) []float64 {
	out := make([]float64, len(v))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			src := v[(y*w+x)*nf : (y*w+x+1)*nf]
			for t, val := range src {
				out[(t*h+y)*w+x] = val
			}
		}
	}
	return out
}

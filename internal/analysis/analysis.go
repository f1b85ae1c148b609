// Package analysis runs the analysis that fits a file: it opens the EMD
// file, builds its catalogue record, runs the hyperspectral analysis for
// spectrum images and spectra, renders previews of images, and writes
// record.json beside the figures. It is the code behind `picoflow analyze`
// and behind the analyse step of a flow.
package analysis

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/analysis/hyperspectral"
	"github.com/picoflow/picoflow/internal/analysis/movie"
	"github.com/picoflow/picoflow/internal/analysis/movie/yolo"
	"github.com/picoflow/picoflow/internal/buildinfo"
	"github.com/picoflow/picoflow/internal/chart"
	"github.com/picoflow/picoflow/internal/checksum"
	"github.com/picoflow/picoflow/internal/emd"
	"github.com/picoflow/picoflow/internal/record"
)

// Options configure Run.
type Options struct {
	// Creator is recorded when the file names no creator.
	Creator string
	// Name is the file's name as the instrument wrote it (default: the base
	// name of the path analysed).
	Name string
	// MaxElements bounds the datasets read into memory (emd.Options).
	MaxElements   int64
	Hyperspectral hyperspectral.Options
	// Movie configures the spatiotemporal analysis of image stacks.
	Movie movie.Options `json:"-"`
	// SHA256, when set, is the file's checksum as already verified (the
	// flow's transfer step); the file is then not read an extra time.
	SHA256 string
	// Model, when set, detects particles in movies with this YOLOv8-format
	// ONNX model through ONNX Runtime instead of the classical detector;
	// ORTLibrary is libonnxruntime.so (default $ONNXRUNTIME_LIB).
	Model, ORTLibrary string
	// Params override settings by name (see ParamNames): from the flow
	// step or a re-analysis campaign.
	Params map[string]string
}

// ErrParams means an analysis parameter is unknown or malformed.
var ErrParams = errors.New("bad analysis parameter")

// Run analyses the file at path and writes record.json and figures to
// outDir, which is created if needed.
func Run(ctx context.Context, path, outDir string, opt Options) (*record.Record, error) {
	start := time.Now()
	if err := opt.applyParams(opt.Params); err != nil {
		return nil, fmt.Errorf("analyze: %w: %w", ErrParams, err)
	}
	var software []record.Software
	var degraded []string
	var sum string
	var size int64
	var err error
	if opt.SHA256 != "" {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("analyze %q: %w", path, err)
		}
		sum, size = opt.SHA256, fi.Size()
	} else if sum, size, err = checksum.File(ctx, path); err != nil {
		return nil, fmt.Errorf("analyze %q: %w", path, err)
	}
	f, err := emd.Open(ctx, path, emd.Options{MaxElements: opt.MaxElements})
	if err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	defer f.Close()
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	rec := record.FromEMD(f, record.Source{Name: cmp.Or(opt.Name, filepath.Base(path)), Size: size, SHA256: sum, Creator: opt.Creator})
	an := &record.Analysis{Kind: "metadata"}
	beamKeV := 0.0
	var products []hyperspectral.Product

	// Spectrum images get the full hyperspectral analysis; a file with only
	// a spectrum gets identification and the spectrum plot.
	var analyze func(context.Context, *emd.File, *emd.Signal, hyperspectral.Options) (*hyperspectral.Result, error)
	kind := ""
	s, err := f.Signal(emd.KindSpectrumImage)
	if err == nil {
		analyze, kind = hyperspectral.AnalyzeSpectrumImage, "hyperspectral"
	} else if s, err = f.Signal(emd.KindSpectrum); err == nil {
		analyze, kind = hyperspectral.AnalyzeSpectrum, "spectrum"
	}
	if analyze != nil {
		res, err := analyze(ctx, f, s, opt.Hyperspectral)
		if err != nil {
			return nil, fmt.Errorf("analyze %q: %w", path, err)
		}
		// Quantify where the beam energy is known.
		q := opt.Hyperspectral.Quant
		if q.BeamEnergy == 0 && rec.Instrument.AcceleratingVoltage != nil {
			q.BeamEnergy = rec.Instrument.AcceleratingVoltage.Value
		}
		beamKeV = q.BeamEnergy
		if q.BeamEnergy > 0 && len(res.Elements) > 0 {
			if err := res.QuantifyAll(q); err != nil {
				an.Warnings = append(an.Warnings, "no quantification: "+err.Error())
			} else {
				an.Composition = recordComposition(res.Composition)
			}
		}
		if products, err = hyperspectral.Render(ctx, res, outDir); err != nil {
			return nil, fmt.Errorf("analyze %q: %w", path, err)
		}
		fillHyperspectral(an, res, kind)
		if err := writeJSON(filepath.Join(outDir, "elements.json"), res); err != nil {
			return nil, err
		}
		products = append(products, hyperspectral.Product{Name: "elements.json", Role: "elements"})
	}
	// A preview of the first image (frame 0 of a movie, or the image
	// itself); the HAADF image where there is one (a spectrum image's
	// element images come first in Velox files).
	order := make([]int, 0, len(f.Signals))
	for i, sg := range f.Signals {
		if strings.Contains(strings.ToUpper(sg.Title), "HAADF") {
			order = append([]int{i}, order...)
		} else {
			order = append(order, i)
		}
	}
	for _, i := range order {
		s := &f.Signals[i]
		if s.Kind != emd.KindImage && s.Kind != emd.KindImageStack {
			continue
		}
		if an.Kind == "metadata" {
			an.Kind = string(s.Kind)
		}
		frame, err := f.ReadFrame(ctx, s, 0)
		if err != nil {
			return nil, fmt.Errorf("analyze %q: %w", path, err)
		}
		saturation(an, s, frame)
		y, x := s.Axes[len(s.Axes)-2], s.Axes[len(s.Axes)-1]
		name := "image.png"
		if err := writeFile(filepath.Join(outDir, name), func(w io.Writer) error {
			return chart.Map(w, chart.MapSpec{
				Title: s.Title, Data: frame, NY: y.Size, NX: x.Size,
				X:     chart.Calib{Scale: x.Scale, Offset: x.Offset, Units: x.Units},
				Y:     chart.Calib{Scale: y.Scale, Offset: y.Offset, Units: y.Units},
				Label: "intensity", Colors: chart.Mono(greyTop), ClipLow: 0.5, ClipHigh: 99.5,
				ScaleBar: slices.Contains([]string{"nm", "µm", "um", "Å", "pm", "mm"}, x.Units),
			})
		}); err != nil {
			return nil, fmt.Errorf("analyze %q: %w", path, err)
		}
		products = append(products, hyperspectral.Product{Name: name, Role: "image-preview"})
		an.Preview = s.Title
		if s.Kind == emd.KindImageStack {
			an.Frames = s.Axes[0].Size
		}
		break
	}
	// Movies: MP4, particle detection and tracking.
	if st, err := f.Signal(emd.KindImageStack); err == nil && st.Axes[0].Size > 1 {
		mo := opt.Movie
		if opt.Model != "" {
			cfg := yolo.Config{Model: opt.Model, Library: opt.ORTLibrary}
			mo.NewDetector = func() (movie.FrameDetector, error) { return yolo.New(cfg) }
			an.Detector = "yolo:" + filepath.Base(opt.Model)
		} else {
			an.Detector = "classical"
		}
		mp, video, err := analyzeMovie(ctx, f, st, outDir, mo, an)
		if err != nil {
			return nil, fmt.Errorf("analyze %q: %w", path, err)
		}
		products = append(products, mp...)
		if video != "" {
			software = append(software, record.Software{Name: "ffmpeg", Version: video})
		} else if !mo.NoVideo {
			degraded = append(degraded, "ffmpeg: not installed, no video")
		}
		if opt.Model != "" {
			software = append(software, record.Software{Name: "ONNX Runtime", Version: yolo.RuntimeVersion()})
		}
	}
	for _, p := range products {
		fi, err := os.Stat(filepath.Join(outDir, p.Name))
		if err != nil {
			return nil, fmt.Errorf("analyze: %w", err)
		}
		rec.Files = append(rec.Files, record.File{Name: p.Name, Role: p.Role, MediaType: mediaType(p.Name), Size: fi.Size()})
	}
	an.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	rec.Analysis = an
	params := opt.effectiveParams(an.Kind, beamKeV)
	if opt.Model != "" {
		params["model"] = filepath.Base(opt.Model)
		if sum, _, err := checksum.File(ctx, opt.Model); err == nil {
			params["model_sha256"] = sum
		}
	}
	build := buildinfo.Current()
	rec.Provenance = &record.Provenance{Analysis: "picoflow " + an.Kind, Version: build.Version, Revision: build.Revision,
		Parameters: params, Software: software, Input: record.Input{Name: cmp.Or(opt.Name, filepath.Base(path)), SHA256: sum, Size: size},
		Started: start.UTC(), Finished: time.Now().UTC(), Degraded: degraded}
	if err := writeJSON(filepath.Join(outDir, "record.json"), rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

var greyTop = color.NRGBA{255, 255, 255, 255}

// Alert thresholds for the operator.
const (
	// LowCountsPerPixel: fewer X-ray counts per pixel make unusable maps.
	LowCountsPerPixel = 5
	// SaturatedFraction of pixels at the detector's maximum value.
	SaturatedFraction = 0.001
	// DriftPixels: particles moving together by more than this over a
	// movie mean the stage or sample drifts.
	DriftPixels = 5
)

// saturation warns when an integer image has many pixels at its type's
// maximum (the detector or amplifier saturated).
func saturation(an *record.Analysis, s *emd.Signal, frame []float64) {
	var top float64
	switch s.DType {
	case "uint8":
		top = math.MaxUint8
	case "uint16":
		top = math.MaxUint16
	case "int16":
		top = math.MaxInt16
	case "uint32":
		top = math.MaxUint32
	case "int32":
		top = math.MaxInt32
	default:
		return
	}
	n := 0
	for _, v := range frame {
		if v >= top {
			n++
		}
	}
	if f := float64(n) / float64(max(len(frame), 1)); f > SaturatedFraction {
		an.Warnings = append(an.Warnings, fmt.Sprintf("saturation: %.2f%% of %s pixels at %g (lower the gain or the beam current)", 100*f, s.Title, top))
	}
}

func fillHyperspectral(an *record.Analysis, res *hyperspectral.Result, kind string) {
	an.Kind = kind
	an.Elements = res.ElementSymbols()
	an.TotalCounts = res.Total
	an.Events = res.Events
	an.Frames = res.Frames
	an.Metrics = map[string]float64{"peaks": float64(len(res.Peaks)), "zero_peak_events": float64(res.ZeroPeak.Events)}
	if res.ZeroPeak.FWHM > 0 {
		an.Metrics["zero_peak_fwhm_kev"] = res.ZeroPeak.FWHM
	}
	if kind == "hyperspectral" {
		an.Selection = selection(res)
	}
	if res.NY > 0 {
		perPixel := float64(res.Total) / float64(res.NY*res.NX)
		an.Metrics["mean_counts_per_pixel"] = perPixel
		an.Metrics["mean_events_per_pixel"] = float64(res.Events) / float64(res.NY*res.NX)
		if perPixel < LowCountsPerPixel {
			an.Warnings = append(an.Warnings, fmt.Sprintf("low counts: %.1f X-rays per pixel; element maps will be noisy (dwell time, beam current or frames)", perPixel))
		}
	}
	if res.Dropped > 0 {
		an.Warnings = append(an.Warnings, fmt.Sprintf("%d events outside the %d channels were ignored", res.Dropped, res.Channels))
	}
	if len(res.Elements) == 0 {
		an.Warnings = append(an.Warnings, "no element identified: counts too low or no significant peak")
	}
}

func recordComposition(c *hyperspectral.Composition) *record.Composition {
	out := &record.Composition{Method: c.Method, BeamEnergy: c.BeamEnergy, Excluded: c.Excluded}
	for _, e := range c.Components {
		out.Elements = append(out.Elements, record.ElementPercent{Element: e.Element, Line: e.Element + " " + e.Line, KFactor: e.KFactor,
			WeightPercent: e.WeightPercent, AtomicPercent: e.AtomicPercent})
	}
	return out
}

// selection describes which detector streams and frames of a spectrum
// image went into its analysis.
func selection(res *hyperspectral.Result) string {
	det := "all detectors"
	if n := res.DetectorStreams; n > 0 {
		det = fmt.Sprintf("detectors %s of %d", spans(res.Detectors), n)
		if len(res.DetectorNames) == len(res.Detectors) && res.DetectorNames[0] != "" {
			det += " (" + strings.Join(res.DetectorNames, ", ") + ")"
		}
		if len(res.Detectors) == n {
			det = fmt.Sprintf("all %d detector streams", n)
			if len(res.DetectorNames) == n && res.DetectorNames[0] != "" {
				det += " (" + strings.Join(res.DetectorNames, ", ") + ")"
			}
			if n == 1 {
				det = "1 detector stream"
			}
		}
	}
	fr := "all frames"
	if r := res.FrameRange; r.First > 0 || r.Last > 0 {
		last := r.Last
		if last == 0 {
			last = res.Frames
		}
		fr = fmt.Sprintf("frames %d-%d", r.First, last-1)
		if res.Frames > 0 {
			fr += fmt.Sprintf(" of %d", res.Frames)
		}
	} else if res.Frames == 1 {
		fr = "1 frame"
	} else if res.Frames > 0 {
		fr = fmt.Sprintf("all %d frames", res.Frames)
	}
	return det + ", " + fr
}

// spans writes sorted indexes as ranges: "0-2,5".
func spans(v []int) string {
	var out string
	for i := 0; i < len(v); {
		j := i
		for j+1 < len(v) && v[j+1] == v[j]+1 {
			j++
		}
		if out != "" {
			out += ","
		}
		if j > i {
			out += fmt.Sprintf("%d-%d", v[i], v[j])
		} else {
			out += fmt.Sprint(v[i])
		}
		i = j + 1
	}
	return out
}

func writeJSON(path string, v any) error {
	return writeFile(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	})
}

// writeFile writes through a temporary file and renames, so a reader never
// sees a half-written product.
func writeFile(path string, fn func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(tmp.Name())
	if err := fn(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

func mediaType(name string) string {
	switch filepath.Ext(name) {
	case ".mp4":
		return "video/mp4"
	case ".csv":
		return "text/csv; charset=utf-8"
	case ".emd", ".h5":
		return "application/x-hdf5"
	}
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// analyzeMovie runs the spatiotemporal analysis. Without ffmpeg it still
// detects and tracks, and says why there is no video.
func analyzeMovie(ctx context.Context, f *emd.File, s *emd.Signal, outDir string, opt movie.Options, an *record.Analysis) (products []hyperspectral.Product, ffmpeg string, err error) {
	fr, err := f.Frames(ctx, s)
	if err != nil {
		return nil, "", err
	}
	defer fr.Close()
	if t := s.Axes[0]; opt.FPS == 0 && t.Units == "s" && t.Scale > 0 {
		opt.FPS = min(max(1/t.Scale, 1), 100)
	}
	if t := s.Axes[0]; t.Units == "s" && t.Scale > 0 {
		opt.Calibration.FrameTime = t.Scale
	}
	if px := s.Axes[len(s.Axes)-1]; px.Scale > 0 && px.Units != "" && px.Units != "px" {
		opt.Calibration.PixelSize, opt.Calibration.PixelUnits = math.Abs(px.Scale), px.Units
	}
	res, err := movie.Analyze(ctx, fr, fr.Frames, fr.H, fr.W, outDir, opt)
	if errors.Is(err, movie.ErrNoFFmpeg) {
		// A setup problem, not a finding: the provenance says the record
		// is degraded (and the operator is told), not its warnings.
		opt.NoVideo = true
		res, err = movie.Analyze(ctx, fr, fr.Frames, fr.H, fr.W, outDir, opt)
	} else if err == nil && !opt.NoVideo {
		ffmpeg = movie.FFmpegVersion()
	}
	if err != nil {
		return nil, "", err
	}
	an.Kind = "spatiotemporal"
	an.Frames = res.Frames
	if an.Metrics == nil {
		an.Metrics = map[string]float64{}
	}
	long := 0
	for _, t := range res.Tracks {
		if len(t.Points) >= max(3, res.Frames/10) {
			long++
		}
	}
	an.Metrics["mean_particles_per_frame"] = res.MeanCount()
	an.Metrics["tracks"] = float64(len(res.Tracks))
	an.Metrics["long_tracks"] = float64(long)
	// Sizes in the calibrated unit when there is one (metric names say
	// which), the number density per µm² when the pixel is a length.
	st := res.Stats
	if st.MeanDiameter > 0 {
		an.Metrics["mean_diameter_"+st.Units] = st.MeanDiameter
		an.Metrics["median_diameter_"+st.Units] = st.MedianDiameter
	}
	if st.Density > 0 {
		an.Metrics["particles_per_um2"] = st.Density
	}
	an.Metrics["merges"] = float64(st.Merges)
	an.Metrics["nucleations"] = float64(st.Nucleations)
	an.Metrics["dissolutions"] = float64(st.Dissolutions)
	if len(res.Counts) > 0 {
		an.Metrics["particles_first_frame"] = float64(res.Counts[0])
		an.Metrics["particles_last_frame"] = float64(res.Counts[len(res.Counts)-1])
	}
	if res.MeanCount() == 0 {
		an.Warnings = append(an.Warnings, "no particles detected in the movie")
	}
	if dx, dy, n := res.Drift(); n >= 3 {
		an.Metrics["drift_x_px_per_frame"], an.Metrics["drift_y_px_per_frame"] = dx, dy
		if d := math.Hypot(dx, dy) * float64(res.Frames); d > DriftPixels {
			msg := fmt.Sprintf("sample drift: %.1f px over the movie (%.3f, %.3f px per frame)", d, dx, dy)
			if px := s.Axes[2]; px.Scale > 0 && s.Axes[0].Units == "s" && s.Axes[0].Scale > 0 {
				msg += fmt.Sprintf(", %.2f %s/s", math.Hypot(dx, dy)*px.Scale/s.Axes[0].Scale, px.Units)
			}
			an.Warnings = append(an.Warnings, msg)
		}
	}
	var out []hyperspectral.Product
	for _, p := range res.Products {
		out = append(out, hyperspectral.Product{Name: p.Name, Role: p.Role})
	}
	return out, ffmpeg, nil
}

// Package hyperspectral analyses EDS spectrum images: the summed intensity
// map (the detector's zero peak apart), the summed spectrum on a calibrated
// energy axis, element identification by a model fit (fit.go), fitted
// per-element maps and Cliff-Lorimer quantification (quant.go). It works on
// the event stream directly and never materialises the full cube.
package hyperspectral

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/picoflow/picoflow/internal/chart"
	"github.com/picoflow/picoflow/internal/emd"
	"github.com/picoflow/picoflow/internal/xray"
)

// Options configure an analysis.
type Options struct {
	Identify IdentifyOptions
	// Quant configures the quantification (its BeamEnergy, when zero,
	// comes from the file's accelerating voltage).
	Quant QuantOptions
	// Frames selects scan frames (zero: all).
	Frames emd.FrameRange
	// Detectors selects detector streams by index (none: all, summed).
	Detectors []int
	// MinXRayEnergy (keV) separates X-rays from the detector's zero peak
	// (the strobe or pulser peak Velox records at 0 keV) and its
	// low-energy noise shoulder: events below it are counted apart and
	// left out of the intensity map, the alerts and the identification.
	// Default 0.2 keV: on real Velox files the shoulder reaches 0.19 keV
	// (velox11: 60-70 counts per 10 eV channel from 0.06 to 0.17 keV,
	// then 9 at 0.20), well above four standard deviations of the 40 eV
	// wide peak. C Ka (0.277 keV) stays; set it lower for B Ka (0.183).
	MinXRayEnergy float64
}

// DefaultMinXRayEnergy is the default of Options.MinXRayEnergy (keV).
const DefaultMinXRayEnergy = 0.2

// ZeroPeak describes the detector's zero (strobe) peak: events at about
// 0 keV that are not X-rays.
type ZeroPeak struct {
	// Events below the X-ray threshold (Cutoff).
	Events uint64 `json:"events"`
	// Centre and FWHM of the peak (keV), measured from the spectrum; zero
	// when there is no peak.
	Centre float64 `json:"centre_kev"`
	FWHM   float64 `json:"fwhm_kev"`
	// Cutoff is the energy (keV) from which events count as X-rays.
	Cutoff float64 `json:"cutoff_kev"`
}

// Result is the outcome of analysing one spectrum image or spectrum.
type Result struct {
	Title    string   `json:"title"`
	NY       int      `json:"ny"`
	NX       int      `json:"nx"`
	Channels int      `json:"channels"`
	Frames   int      `json:"frames"`
	Energy   emd.Axis `json:"energy"`
	Y        emd.Axis `json:"y"`
	X        emd.Axis `json:"x"`
	// Total is the number of X-rays (events at or above the zero peak's
	// cutoff); Events counts every decoded event, ZeroPeak those below.
	Total    uint64   `json:"total_counts"`
	Events   uint64   `json:"events"`
	ZeroPeak ZeroPeak `json:"zero_peak"`
	Dropped  int      `json:"dropped_events"`
	// Detectors are the detector streams that went in (indexes), of
	// DetectorStreams in the file; FrameRange the frames (Last 0: all).
	Detectors       []int          `json:"detectors,omitempty"`
	DetectorNames   []string       `json:"detector_names,omitempty"`
	DetectorStreams int            `json:"detector_streams,omitempty"`
	FrameRange      emd.FrameRange `json:"frame_range"`
	Elements        []Element      `json:"elements"`
	Peaks           []Peak         `json:"peaks"`
	// Spectrum is the summed spectrum, one value per channel.
	Spectrum []uint64 `json:"-"`
	// Intensity is the summed X-rays per pixel (NY×NX, row-major), the
	// zero peak left out.
	Intensity []uint64 `json:"-"`
	// MapBin is the binning of Maps (MapBin×MapBin pixels summed, chosen
	// where counts are low so a map pixel holds about MinMapCounts
	// X-rays); MapNY×MapNX their size.
	MapBin       int `json:"map_bin"`
	MapNY, MapNX int `json:"-"`
	// Fit is the model fitted to the summed spectrum (background and
	// element families), which decided the elements.
	Fit *SpectrumFit `json:"fit,omitempty"`
	// Composition is the Cliff-Lorimer quantification of the whole
	// spectrum (image), when the beam energy is known; CompositionMaps the
	// atomic percent per map pixel (NaN where a pixel has too few counts).
	Composition     *Composition `json:"composition,omitempty"`
	CompositionMaps [][]float32  `json:"-"`
	// Maps holds one NY×NX map per element, in Elements order: the fitted
	// net counts of its map family in each pixel (background and
	// overlapping families removed; noise can make a pixel negative).
	Maps [][]float32 `json:"-"`
}

// AnalyzeSpectrumImage decodes a Velox spectrum image and analyses it.
func AnalyzeSpectrumImage(ctx context.Context, f *emd.File, s *emd.Signal, opt Options) (*Result, error) {
	st, err := f.ReadStream(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("analyze spectrum image: %w", err)
	}
	n := len(st.Detectors)
	if st, err = st.SelectDetectors(opt.Detectors); err != nil {
		return nil, fmt.Errorf("analyze spectrum image: %w", err)
	}
	if st.Frames > 0 && (opt.Frames.First >= st.Frames || opt.Frames.Last > st.Frames) {
		return nil, fmt.Errorf("analyze spectrum image: frames %d:%d: %w: the file has frames 0-%d", opt.Frames.First, opt.Frames.Last, emd.ErrNotFound, st.Frames-1)
	}
	r, err := AnalyzeStream(ctx, st, s.Axes[0], s.Axes[1], opt)
	if err != nil {
		return nil, err
	}
	r.DetectorStreams = n
	r.Detectors = opt.Detectors
	if len(r.Detectors) == 0 {
		for i := range n {
			r.Detectors = append(r.Detectors, i)
		}
	}
	for _, i := range r.Detectors {
		if i < len(s.DetectorNames) {
			r.DetectorNames = append(r.DetectorNames, s.DetectorNames[i])
		}
	}
	return r, nil
}

// AnalyzeStream analyses a decoded event stream with its spatial axes.
func AnalyzeStream(ctx context.Context, st *emd.Stream, y, x emd.Axis, opt Options) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if st.Energy.Units != "keV" {
		return nil, fmt.Errorf("analyze spectrum image: energy axis is not calibrated (units %q)", st.Energy.Units)
	}
	r := &Result{Title: "EDS", NY: st.NY, NX: st.NX, Channels: st.Channels, Frames: st.Frames, Energy: st.Energy, Y: y, X: x, FrameRange: opt.Frames}
	cal := Calibration{Offset: st.Energy.Offset, Scale: st.Energy.Scale}
	cut := max(0, int(math.Ceil((minXRay(opt)-cal.Offset)/cal.Scale)))
	r.Intensity, r.Spectrum, r.Dropped = st.SumFrom(opt.Frames, cut)
	r.countEvents(cut, cal)
	r.identify(opt.Identify)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.Maps = r.fittedMaps(st, opt.Frames)
	return r, nil
}

// fittedMaps applies the summed spectrum's model to every pixel: with the
// shapes of the fitted families and of the background fixed, each pixel's
// amplitudes are the weighted least-squares solution, a linear function of
// its counts (weights from the summed fit), so the events are projected
// one by one without building the cube.
func (r *Result) fittedMaps(st *emd.Stream, frames emd.FrameRange) [][]float32 {
	f := r.Fit
	if f == nil || len(r.Elements) == 0 || len(f.shapes) == 0 {
		return nil
	}
	nf := len(f.shapes)
	m := nf + 1
	cols := append(append([][]float64{}, f.shapes...), f.bgUnit)
	span := f.Hi - f.Lo
	w := make([]float64, span)
	for c := range span {
		w[c] = 1 / math.Max(f.Model[f.Lo+c], 1)
	}
	G := make([]float64, m*m)
	for j := range m {
		for k := j; k < m; k++ {
			var s float64
			for c := range span {
				s += w[c] * cols[j][c] * cols[k][c]
			}
			G[j*m+k], G[k*m+j] = s, s
		}
	}
	inv, err := invertSPD(G, m)
	if err != nil {
		return nil
	}
	ne := len(r.Elements)
	coef := make([]float32, st.Channels*ne)
	for e, el := range r.Elements {
		j := slices.IndexFunc(f.Families, func(ff FamilyFit) bool { return ff.Element == el.Symbol && ff.Family == el.Family })
		if j < 0 {
			continue
		}
		for c := range span {
			var v float64
			for k := range m {
				v += inv[j*m+k] * cols[k][c]
			}
			coef[(f.Lo+c)*ne+e] = float32(v * w[c])
		}
	}
	maps := st.Project(frames, coef, ne, f.Lo, f.Hi)
	r.MapBin, r.MapNY, r.MapNX = 1, r.NY, r.NX
	if mean := float64(r.Total) / float64(max(r.NY*r.NX, 1)); mean < MinMapCounts && mean > 0 {
		b := min(int(math.Ceil(math.Sqrt(MinMapCounts/mean))), 8, max(min(r.NY, r.NX)/8, 1))
		if b > 1 {
			for k := range maps {
				maps[k], r.MapNY, r.MapNX = binMap(maps[k], r.NY, r.NX, b)
			}
			r.MapBin = b
		}
	}
	return maps
}

// MinMapCounts is the X-rays a map pixel should hold: below it, maps are
// binned (Result.MapBin).
const MinMapCounts = 40

// binMap sums b×b blocks (the last row and column of blocks may be
// partial).
func binMap(m []float32, ny, nx, b int) ([]float32, int, int) {
	by, bx := (ny+b-1)/b, (nx+b-1)/b
	out := make([]float32, by*bx)
	for y := range ny {
		for x := range nx {
			out[(y/b)*bx+x/b] += m[y*nx+x]
		}
	}
	return out, by, bx
}

// AnalyzeSpectrum analyses a single spectrum (no maps).
func AnalyzeSpectrum(ctx context.Context, f *emd.File, s *emd.Signal, opt Options) (*Result, error) {
	v, err := f.ReadData(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("analyze spectrum: %w", err)
	}
	r := &Result{Title: s.Title, Channels: len(v), Energy: s.Axes[0]}
	r.Spectrum = make([]uint64, len(v))
	for i, c := range v {
		if c > 0 {
			r.Spectrum[i] = uint64(c)
		}
	}
	if r.Energy.Units == "keV" {
		cal := Calibration{Offset: r.Energy.Offset, Scale: r.Energy.Scale}
		r.countEvents(max(0, int(math.Ceil((minXRay(opt)-cal.Offset)/cal.Scale))), cal)
		r.identify(opt.Identify)
	} else {
		for _, c := range r.Spectrum {
			r.Total += c
		}
		r.Events = r.Total
	}
	return r, nil
}

func minXRay(opt Options) float64 {
	if opt.MinXRayEnergy > 0 {
		return opt.MinXRayEnergy
	}
	return DefaultMinXRayEnergy
}

// countEvents splits the spectrum's events into X-rays (channels from cut
// up) and the zero peak, and measures the zero peak's centre and width.
func (r *Result) countEvents(cut int, cal Calibration) {
	r.Total, r.Events = 0, 0
	for c, v := range r.Spectrum {
		r.Events += v
		if c >= cut {
			r.Total += v
		}
	}
	r.ZeroPeak = ZeroPeak{Events: r.Events - r.Total, Cutoff: cal.energy(cut)}
	// The peak: the highest channel below the cutoff, its width at half
	// maximum (interpolated), when it stands out at all.
	top, at := uint64(0), -1
	for c := 0; c < min(cut, len(r.Spectrum)); c++ {
		if r.Spectrum[c] > top {
			top, at = r.Spectrum[c], c
		}
	}
	if at < 0 || top < 10 {
		return
	}
	half := float64(top) / 2
	edge := func(step int) float64 {
		for c := at; c+step >= 0 && c+step < len(r.Spectrum); c += step {
			if a, b := float64(r.Spectrum[c]), float64(r.Spectrum[c+step]); b < half {
				return float64(c) + float64(step)*(a-half)/(a-b)
			}
		}
		return float64(at)
	}
	lo, hi := edge(-1), edge(1)
	r.ZeroPeak.Centre = cal.Offset + (lo+hi)/2*cal.Scale
	r.ZeroPeak.FWHM = (hi - lo) * cal.Scale
}

// identify fits the model to the summed spectrum: the elements are those
// whose families the fit keeps (see FitSpectrum). Peaks are found too, for
// the record.
func (r *Result) identify(opt IdentifyOptions) {
	counts := make([]float64, len(r.Spectrum))
	for i, v := range r.Spectrum {
		counts[i] = float64(v)
	}
	o := opt.withDefaults()
	cal := Calibration{Offset: r.Energy.Offset, Scale: r.Energy.Scale}
	r.Peaks = FindPeaks(counts, cal, o)
	r.Fit = FitSpectrum(counts, cal, FitOptions{FWHMMn: o.FWHMMn, BeamEnergy: o.BeamEnergy, MinEnergy: math.Max(o.MinEnergy, DefaultMinXRayEnergy),
		MinSignificance: o.MinSignificance})
	r.Elements = elementsOf(r.Fit, o.FWHMMn)
	if r.Elements == nil {
		r.Elements = []Element{} // "elements": [] in elements.json, not null
	}
	if r.Peaks == nil {
		r.Peaks = []Peak{}
	}
}

// elementsOf turns the fitted families into elements; each element's map
// family is its most significant one (the cleanest line).
func elementsOf(f *SpectrumFit, fwhmMn float64) []Element {
	var out []Element
	for _, ff := range f.Families {
		k := slices.IndexFunc(out, func(e Element) bool { return e.Symbol == ff.Element })
		if k < 0 {
			out = append(out, Element{Symbol: ff.Element})
			k = len(out) - 1
		}
		el := &out[k]
		for _, l := range xray.ElementLines(ff.Element) {
			el.Z = l.Z
		}
		el.Lines = append(el.Lines, LineMatch{Line: ff.Line, Energy: ff.Energy, PeakEnergy: ff.Energy, NetCounts: ff.Counts, Significance: ff.Significance})
		if el.Family == "" || ff.Significance > el.Significance {
			el.Family, el.Line, el.Energy, el.Counts, el.Sigma, el.Significance = ff.Family, ff.Line, ff.Energy, ff.Counts, ff.Sigma, ff.Significance
			hw := 0.6 * FWHM(ff.Energy, fwhmMn)
			el.Window = [2]float64{ff.Energy - hw, ff.Energy + hw}
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Z < out[b].Z })
	return out
}

// ElementSymbols returns the identified elements' symbols.
func (r *Result) ElementSymbols() []string {
	out := make([]string, len(r.Elements))
	for i, e := range r.Elements {
		out[i] = e.Symbol
	}
	return out
}

// Product is one file written by Render.
type Product struct {
	Name string
	Role string
}

// elementColors cycles through distinguishable colours for element maps.
var elementColors = []color.NRGBA{
	{255, 80, 80, 255}, {80, 220, 80, 255}, {90, 140, 255, 255}, {255, 200, 40, 255},
	{230, 90, 255, 255}, {40, 220, 230, 255}, {255, 140, 40, 255}, {200, 200, 200, 255},
}

// Render writes the figures of a result into dir: intensity.png (for
// spectrum images), spectrum.png, spectrum.csv and map-<El>.png per element.
func Render(ctx context.Context, r *Result, dir string) ([]Product, error) {
	type job struct {
		name, role string
		fn         func(f *os.File) error
	}
	var jobs []job
	add := func(name, role string, fn func(f *os.File) error) { jobs = append(jobs, job{name, role, fn}) }

	energies := make([]float64, len(r.Spectrum))
	counts := make([]float64, len(r.Spectrum))
	for i, v := range r.Spectrum {
		energies[i] = r.Energy.Value(float64(i))
		counts[i] = float64(v)
	}
	var markers []chart.Marker
	for _, el := range r.Elements {
		for _, l := range el.Lines {
			markers = append(markers, chart.Marker{Energy: l.Energy, Label: el.Symbol + " " + l.Line})
		}
	}
	add("spectrum.png", "spectrum", func(f *os.File) error {
		return chart.Spectrum(f, chart.SpectrumSpec{Title: fmt.Sprintf("Summed spectrum (%d X-rays; %d zero-peak events)", r.Total, r.ZeroPeak.Events), Energy: energies, Counts: counts, Markers: markers, MaxEnergy: spectrumMax(r)})
	})
	add("spectrum.csv", "spectrum-data", func(f *os.File) error {
		w := bufio.NewWriter(f)
		fmt.Fprintln(w, "energy_keV,counts,model,background")
		for i := range counts {
			var m, b float64
			if r.Fit != nil && i < len(r.Fit.Model) {
				m, b = r.Fit.Model[i], r.Fit.Background[i]
			}
			fmt.Fprintf(w, "%.5f,%d,%.3f,%.3f\n", energies[i], r.Spectrum[i], m, b)
		}
		return w.Flush()
	})
	if r.NY > 0 {
		xc := chart.Calib{Scale: r.X.Scale, Offset: r.X.Offset, Units: r.X.Units}
		yc := chart.Calib{Scale: r.Y.Scale, Offset: r.Y.Offset, Units: r.Y.Units}
		add("intensity.png", "intensity-map", func(f *os.File) error {
			return chart.Map(f, chart.MapSpec{Title: fmt.Sprintf("X-ray intensity (from %.2f keV)", r.ZeroPeak.Cutoff), Data: toF(r.Intensity), NY: r.NY, NX: r.NX, X: xc, Y: yc, Label: "X-ray counts", ClipHigh: 99.5})
		})
		if ch := overlayChannels(r); len(ch) >= 2 {
			mx, my := xc, yc
			mx.Scale *= float64(max(r.MapBin, 1))
			my.Scale *= float64(max(r.MapBin, 1))
			var names []string
			for _, c := range ch {
				names = append(names, c.Name)
			}
			add("overlay.png", "element-overlay", func(f *os.File) error {
				return chart.Overlay(f, chart.OverlaySpec{Title: "Element overlay: " + strings.Join(names, ", ") + " (fitted net counts)", Channels: ch, NY: r.MapNY, NX: r.MapNX, X: mx, Y: my})
			})
		}
		for k, el := range r.Elements {
			if k >= len(r.Maps) {
				break
			}
			title := fmt.Sprintf("%s %s family (%s %.2f keV), fitted", el.Symbol, el.Family, el.Line, el.Energy)
			mx, my := xc, yc
			if r.MapBin > 1 {
				title += fmt.Sprintf(", %d×%d binned", r.MapBin, r.MapBin)
				mx.Scale *= float64(r.MapBin)
				my.Scale *= float64(r.MapBin)
			}
			add("map-"+el.Symbol+".png", "element-map", func(f *os.File) error {
				m := make([]float64, len(r.Maps[k]))
				for i, v := range r.Maps[k] {
					m[i] = math.Max(float64(v), 0)
				}
				return chart.Map(f, chart.MapSpec{Title: title, Data: m, NY: r.MapNY, NX: r.MapNX, X: mx, Y: my, Label: el.Symbol + " " + el.Family + " net counts", Colors: chart.Mono(elementColors[k%len(elementColors)]), ClipHigh: 99.5})
			})
			add("map-"+el.Symbol+".npy", "element-map-data", func(f *os.File) error {
				return writeNPY(f, r.Maps[k], r.MapNY, r.MapNX)
			})
			if k < len(r.CompositionMaps) && r.CompositionMaps[k] != nil {
				add("atomic-percent-"+el.Symbol+".npy", "composition-map-data", func(f *os.File) error {
					return writeNPY(f, r.CompositionMaps[k], r.MapNY, r.MapNX)
				})
			}
		}
	}

	// The figures are independent: draw them on all cores.
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := ctx.Err(); err != nil {
				errs[i] = err
				return
			}
			errs[i] = writeProduct(filepath.Join(dir, j.name), j.fn)
		})
	}
	wg.Wait()
	var out []Product
	for i, j := range jobs {
		if errs[i] != nil {
			return out, fmt.Errorf("render %s: %w", j.name, errs[i])
		}
		out = append(out, Product{Name: j.name, Role: j.role})
	}
	return out, nil
}

func writeProduct(path string, fn func(f *os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// spectrumMax shows the spectrum up to a little past its last significant
// signal, so the interesting low-energy region is not squeezed.
func spectrumMax(r *Result) float64 {
	last := 0
	for i, v := range r.Spectrum {
		if v > 0 {
			last = i
		}
	}
	top := r.Energy.Value(float64(last)) * 1.02
	// The range that holds the lines: a quarter beyond the highest
	// identified line, at least 10 keV (the bremsstrahlung of a 200-300 kV
	// beam runs on to 40 keV and more, with nothing to read in it).
	hi := 0.0
	for _, el := range r.Elements {
		for _, l := range el.Lines {
			hi = math.Max(hi, l.Energy)
		}
	}
	for _, p := range r.Peaks {
		hi = math.Max(hi, p.Energy)
	}
	e := math.Max(10, hi*1.25)
	if hi == 0 {
		// No lines: where 99 % of the X-rays are.
		var total, sum float64
		for _, v := range r.Spectrum {
			total += float64(v)
		}
		for i, v := range r.Spectrum {
			if sum += float64(v); sum >= 0.99*total {
				e = math.Max(e, r.Energy.Value(float64(i))*1.1)
				break
			}
		}
	}
	return math.Min(e, top)
}

// overlayChannels are the element maps of the colour overlay: the three
// elements with the most net counts, the support film's carbon left out
// when there are two others.
func overlayChannels(r *Result) []chart.Channel {
	idx := make([]int, 0, len(r.Elements))
	for k := range r.Elements {
		if k < len(r.Maps) {
			idx = append(idx, k)
		}
	}
	if others := slices.DeleteFunc(slices.Clone(idx), func(k int) bool { return r.Elements[k].Symbol == "C" }); len(others) >= 2 {
		idx = others
	}
	sort.SliceStable(idx, func(a, b int) bool { return r.Elements[idx[a]].Counts > r.Elements[idx[b]].Counts })
	colours := []color.NRGBA{{255, 50, 50, 255}, {50, 230, 50, 255}, {60, 110, 255, 255}}
	var out []chart.Channel
	for i, k := range idx[:min(3, len(idx))] {
		m := make([]float64, len(r.Maps[k]))
		for j, v := range r.Maps[k] {
			m[j] = float64(v)
		}
		out = append(out, chart.Channel{Name: r.Elements[k].Symbol + " " + r.Elements[k].Family, Data: m, Color: colours[i]})
	}
	return out
}

func toF(v []uint64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// writeNPY writes a float32 NY×NX array in NumPy's .npy format (version
// 1.0, little-endian, C order), for reuse in Python (numpy.load).
func writeNPY(w io.Writer, v []float32, ny, nx int) error {
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", ny, nx)
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	b := make([]byte, 0, 10+len(header)+4*len(v))
	b = append(b, "\x93NUMPY\x01\x00"...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(header)))
	b = append(b, header...)
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	_, err := w.Write(b)
	return err
}

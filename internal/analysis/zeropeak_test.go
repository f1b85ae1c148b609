package analysis

import (
	"context"
	"encoding/json"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/picoflow/picoflow/internal/analysis/hyperspectral"
	"github.com/picoflow/picoflow/internal/emd"
	"github.com/picoflow/picoflow/internal/emd/emdtest"
)

// h5pySpectra returns, read with h5py (independent of our HDF5 reader),
// every spectrum Velox stored beside a spectrum image, by detector name.
const h5pySpectra = `
import sys, json, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    out = {}
    for k in f["Data/Spectrum"]:
        g = f["Data/Spectrum"][k]
        md = json.loads(bytes(np.asarray(g["Metadata"])[:, 0]).decode("utf-8", "ignore").rstrip("\x00"))
        out[md["BinaryResult"]["Detector"]] = [int(x) for x in np.asarray(g["Data"]).ravel()]
    print(json.dumps(out))
`

func analyzeFile(t *testing.T, name string, opt hyperspectral.Options) *hyperspectral.Result {
	t.Helper()
	f, err := emd.Open(context.Background(), emdtest.File(t, name), emd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := f.Signal(emd.KindSpectrumImage)
	if err != nil {
		t.Fatal(err)
	}
	res, err := hyperspectral.AnalyzeSpectrumImage(context.Background(), f, s, opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestZeroPeakIsNotXRays: on real Velox spectrum images nearly every event
// is the detector's zero (strobe) peak at 0 keV. Those events are counted
// apart: the X-ray count, the intensity map and the low-counts alert use
// X-rays only, and no element comes from the zero peak.
func TestZeroPeakIsNotXRays(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file          string
		events, xrays uint64
	}{
		// Events: RosettaSciIO's reference sum (example_fei_emd_si) and the
		// spectra Velox stored (velox11). X-rays: the events from 0.2 keV up
		// in the reference spectrum.
		{"velox/example_fei_emd_si.emd", 6564, 104},
		{"velox/velox11_test_SI_16x16_215kx.emd", 42097, 206},
	} {
		res := analyzeFile(t, tc.file, hyperspectral.Options{})
		var img uint64
		for _, v := range res.Intensity {
			img += v
		}
		if res.Events != tc.events || res.Total != tc.xrays || img != tc.xrays || res.ZeroPeak.Events != tc.events-tc.xrays {
			t.Errorf("%s: %d events, %d X-rays, intensity map %d, zero peak %d; want %d events, %d X-rays", tc.file, res.Events, res.Total, img, res.ZeroPeak.Events, tc.events, tc.xrays)
		}
		if z := res.ZeroPeak; z.Centre < -0.02 || z.Centre > 0.02 || z.FWHM < 0.02 || z.FWHM > 0.08 {
			t.Errorf("%s: zero peak at %.3f keV, FWHM %.3f keV; want about 0 and 40 eV", tc.file, z.Centre, z.FWHM)
		}
		for _, el := range res.Elements {
			if el.Energy < 0.25 || !slices.Contains([]string{"C", "O", "Cu", "Ca", "Si"}, el.Symbol) {
				t.Errorf("%s: %s identified from %s at %.2f keV", tc.file, el.Symbol, el.Line, el.Energy)
			}
		}
		for _, p := range res.Peaks {
			if p.Energy < hyperspectral.DefaultMinXRayEnergy {
				t.Errorf("%s: a peak at %.3f keV, in the zero peak", tc.file, p.Energy)
			}
		}
	}
	// The record: X-rays per pixel drive the alert, events are reported.
	rec, err := Run(context.Background(), emdtest.File(t, "velox/velox11_test_SI_16x16_215kx.emd"), t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := rec.Analysis
	if a.TotalCounts != 206 || a.Events != 42097 || a.Metrics["mean_counts_per_pixel"] > 1 || !slices.ContainsFunc(a.Warnings, func(w string) bool { return strings.HasPrefix(w, "low counts: 0.8 X-rays per pixel") }) {
		t.Errorf("record: %d X-rays, %d events, metrics %v, warnings %q", a.TotalCounts, a.Events, a.Metrics, a.Warnings)
	}
	if a.Selection != "all 4 detector streams (SuperXG23, SuperXG21, SuperXG24, SuperXG22), all 2 frames" {
		t.Errorf("record selection %q", a.Selection)
	}
}

// TestDetectorAndFrameSelection: every detector stream is summed by
// default; one detector alone gives the spectrum Velox stored for it
// (read with h5py); frames 2-4 give RosettaSciIO's reference total.
func TestDetectorAndFrameSelection(t *testing.T) {
	t.Parallel()
	file := "velox/velox11_test_SI_16x16_215kx.emd"
	out := emdtest.H5py(t, h5pySpectra, emdtest.File(t, file))
	var stored map[string][]uint64
	if err := json.Unmarshal(out, &stored); err != nil {
		t.Fatal(err)
	}
	all := analyzeFile(t, file, hyperspectral.Options{})
	if len(stored) != all.DetectorStreams || len(stored) < 2 {
		t.Fatalf("%d stored spectra, %d detector streams", len(stored), all.DetectorStreams)
	}
	var sum uint64
	for d := range len(stored) {
		one := analyzeFile(t, file, hyperspectral.Options{Detectors: []int{d}})
		if len(one.DetectorNames) != 1 || stored[one.DetectorNames[0]] == nil {
			t.Fatalf("detector %d is named %v; Velox stored spectra for %v", d, one.DetectorNames, slices.Collect(maps.Keys(stored)))
		}
		spec := stored[one.DetectorNames[0]]
		var want uint64
		for _, v := range spec {
			want += v
		}
		sum += one.Events
		if one.Events != want || !slices.Equal(one.Detectors, []int{d}) || !slices.Equal(one.Spectrum, spec[:len(one.Spectrum)]) {
			t.Errorf("detector %d (%s): %d events, Velox stored %d, spectra equal: %v", d, one.DetectorNames[0], one.Events, want, slices.Equal(one.Spectrum, spec[:len(one.Spectrum)]))
		}
	}
	if sum != all.Events {
		t.Errorf("detectors one by one: %d events; all together %d", sum, all.Events)
	}
	if _, err := hyperspectralErr(t, file, hyperspectral.Options{Detectors: []int{len(stored)}}); err == nil {
		t.Errorf("detector %d of %d accepted", len(stored), len(stored))
	}
	fr := analyzeFile(t, "velox/example_fei_emd_si.emd", hyperspectral.Options{Frames: emd.FrameRange{First: 2, Last: 4}})
	if fr.Events != 2622 {
		t.Errorf("frames 2-4: %d events, RosettaSciIO 2622", fr.Events)
	}
	if _, err := hyperspectralErr(t, "velox/example_fei_emd_si.emd", hyperspectral.Options{Frames: emd.FrameRange{First: 7}}); err == nil {
		t.Error("frame 7 of 5 accepted")
	}
}

func hyperspectralErr(t *testing.T, name string, opt hyperspectral.Options) (*hyperspectral.Result, error) {
	f, err := emd.Open(context.Background(), emdtest.File(t, name), emd.Options{})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := f.Signal(emd.KindSpectrumImage)
	if err != nil {
		return nil, err
	}
	return hyperspectral.AnalyzeSpectrumImage(context.Background(), f, s, opt)
}

// TestReaderGaps: the spectrum image's axes carry the scan offset from the
// stream's own metadata (read here with h5py); the preview is the HAADF
// image; single spectra get elements.json too.
func TestReaderGaps(t *testing.T) {
	t.Parallel()
	path := emdtest.File(t, "velox/velox11_test_SI_16x16_215kx.emd")
	script := `
import sys, json, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    g = f["Data/SpectrumStream"]; k = sorted(g)[0]
    md = json.loads(bytes(np.asarray(g[k]["Metadata"])[:, 0]).decode("utf-8", "ignore").rstrip("\x00"))
    print(json.dumps({"x": float(md["BinaryResult"]["Offset"]["x"]) * 1e9, "y": float(md["BinaryResult"]["Offset"]["y"]) * 1e9}))
`
	out := emdtest.H5py(t, script, path)
	var want struct{ X, Y float64 }
	json.Unmarshal(out, &want)
	dir := t.TempDir()
	rec, err := Run(context.Background(), path, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range rec.Signals {
		if s.Kind != string(emd.KindSpectrumImage) {
			continue
		}
		found = true
		y, x := s.Axes[0], s.Axes[1]
		if want.X == 0 || math.Abs(x.Offset-want.X) > 1e-6 || math.Abs(y.Offset-want.Y) > 1e-6 || x.Units != "nm" {
			t.Errorf("spectrum image offsets x %.4f y %.4f %s, stream metadata %.4f %.4f nm", x.Offset, y.Offset, x.Units, want.X, want.Y)
		}
	}
	if !found {
		t.Fatalf("no spectrum image among %+v", rec.Signals)
	}
	var preview string
	for _, f := range rec.Files {
		if f.Role == "image-preview" {
			preview = f.Name
		}
	}
	if preview == "" {
		t.Fatal("no preview")
	}
	if rec.Analysis.Preview != "HAADF" {
		t.Errorf("preview of %q, want the HAADF image", rec.Analysis.Preview)
	}
	sp := t.TempDir()
	if _, err := Run(context.Background(), emdtest.File(t, "velox/example_fei_emd_spectrum.emd"), sp, Options{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(sp, "elements.json"))
	if err != nil || !strings.Contains(string(b), `"symbol": "Cu"`) {
		t.Errorf("elements.json of a single spectrum: %v", err)
	}
}

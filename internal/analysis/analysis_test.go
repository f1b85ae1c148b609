package analysis

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/picoflow/picoflow/internal/analysis/hyperspectral"
	"github.com/picoflow/picoflow/internal/emd"
	"github.com/picoflow/picoflow/internal/emd/emdtest"
	"github.com/picoflow/picoflow/internal/record"
	"github.com/picoflow/picoflow/internal/sandbox"
	"github.com/picoflow/picoflow/internal/simulate"
)

// TestSyntheticGroundTruth simulates spectrum images with known elements and
// particles and requires the analysis to find exactly those elements, with
// element maps brighter inside each particle than on the support.
func TestSyntheticGroundTruth(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		dir := t.TempDir()
		path := filepath.Join(dir, "si.emd")
		truth, err := simulate.WriteSpectrumImage(context.Background(), path, simulate.SpectrumImageSpec{
			Width: 64, Height: 64, Support: "C", Elements: []string{"Au", "Fe", "Cu"}, CountsPerPixel: 300, Seed: seed,
		})
		if err != nil {
			t.Fatal(err)
		}
		f, err := emd.Open(context.Background(), path, emd.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := f.Signal(emd.KindSpectrumImage)
		if err != nil {
			t.Fatal(err)
		}
		res, err := hyperspectral.AnalyzeSpectrumImage(context.Background(), f, s, hyperspectral.Options{})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := res.ElementSymbols()
		sort.Strings(got)
		if !slices.Equal(got, truth.Elements) {
			t.Errorf("seed %d: identified %v, ground truth %v", seed, got, truth.Elements)
			continue
		}
		if res.Events != uint64(truth.Events) {
			t.Errorf("seed %d: %d counts, simulated %d", seed, res.Total, truth.Events)
		}
		for _, p := range truth.Particles {
			k := slices.Index(res.ElementSymbols(), p.Element)
			m := res.Maps[k]
			in := m[int(p.Y)*res.NX+int(p.X)]
			if float64(in) <= 0 {
				t.Errorf("seed %d: %s map has no counts at particle centre (%.0f, %.0f)", seed, p.Element, p.X, p.Y)
			}
		}
	}
}

// TestVelox11AgreesWithVelox compares the elements identified in a real
// Velox 11 spectrum image with the element maps Velox itself made (stored as
// images titled by element), allowing for elements too weak to detect.
func TestVelox11AgreesWithVelox(t *testing.T) {
	t.Parallel()
	f, err := emd.Open(context.Background(), emdtest.File(t, "velox/velox11_test_SI_16x16_215kx.emd"), emd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	veloxMaps := map[string]bool{}
	for _, s := range f.Signals {
		if s.Kind == emd.KindImage && s.Title != "HAADF" {
			veloxMaps[s.Title] = true
		}
	}
	s, _ := f.Signal(emd.KindSpectrumImage)
	res, err := hyperspectral.AnalyzeSpectrumImage(context.Background(), f, s, hyperspectral.Options{Identify: hyperspectral.IdentifyOptions{MinSignificance: 3}})
	if err != nil {
		t.Fatal(err)
	}
	got := res.ElementSymbols()
	if len(got) < 3 {
		t.Errorf("identified %v; Velox mapped %v", got, veloxMaps)
	}
	for _, el := range got {
		if !veloxMaps[el] {
			t.Errorf("identified %s, which Velox did not map (%v)", el, veloxMaps)
		}
	}
}

func TestRunWritesRecord(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	rec, err := Run(context.Background(), emdtest.File(t, "velox/example_fei_emd_si.emd"), out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "record.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back record.Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	in := back.Instrument
	if back.ID != rec.ID || len(back.ID) != 64 || back.ResourceType.ResourceType != "EDS spectrum image" {
		t.Errorf("record id %q type %q", back.ID, back.ResourceType.ResourceType)
	}
	// HyperSpy 1.7.3 reads 2017-03-06 09:57:56 UTC, 200 kV, magnification
	// 40000 from this file.
	if in.AcquisitionStart == nil || in.AcquisitionStart.Format("2006-01-02 15:04:05") != "2017-03-06 09:57:56" {
		t.Errorf("acquisition start %v", in.AcquisitionStart)
	}
	if in.AcceleratingVoltage == nil || *in.AcceleratingVoltage != (record.Quantity{Value: 200, Unit: "kV"}) {
		t.Errorf("voltage %+v", in.AcceleratingVoltage)
	}
	if in.Magnification == nil || in.Magnification.Value != 40000 {
		t.Errorf("magnification %+v", in.Magnification)
	}
	if in.PixelSizeX == nil || in.PixelSizeX.Unit != "nm" || in.PixelSizeX.Value != 5.30241484 {
		t.Errorf("pixel size %+v", in.PixelSizeX)
	}
	for _, name := range []string{"intensity.png", "spectrum.png", "spectrum.csv", "image.png"} {
		if fi, err := os.Stat(filepath.Join(out, name)); err != nil || fi.Size() < 100 {
			t.Errorf("%s: %v", name, err)
		}
	}
	if back.RawMetadata["Version"] == nil {
		t.Error("raw metadata lost")
	}
}

func TestRunBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, err := os.ReadFile(emdtest.File(t, "velox/example_fei_emd_si.emd"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "cut.emd")
	if err := os.WriteFile(p, src[:len(src)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), p, filepath.Join(dir, "out"), Options{})
	if !errors.Is(err, emd.ErrFormat) {
		t.Fatalf("truncated file: %v, want ErrFormat", err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != int64(len(src)/3) {
		t.Fatal("the input file was changed or removed")
	}
}

var workers = sandbox.NewRegistry()

func TestMain(m *testing.M) {
	RegisterWorkers(workers)
	workers.Main()
	os.Exit(m.Run())
}

// TestRunIsolatedMatchesRun runs the same analysis in-process and in a
// child process and compares the records; bad input keeps its class.
func TestRunIsolatedMatchesRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := emdtest.File(t, "velox/example_fei_emd_si.emd")
	want, err := Run(context.Background(), src, filepath.Join(dir, "a"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := RunIsolated(context.Background(), workers, src, filepath.Join(dir, "b"), Options{}, sandbox.Limits{Memory: 2 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Analysis.Elements, want.Analysis.Elements) || len(got.Files) != len(want.Files) ||
		got.Instrument.AcceleratingVoltage == nil || *got.Instrument.AcceleratingVoltage != *want.Instrument.AcceleratingVoltage {
		t.Fatalf("isolated record differs: elements %v vs %v, %d vs %d files", got.Analysis.Elements, want.Analysis.Elements, len(got.Files), len(want.Files))
	}
	if _, err := os.Stat(filepath.Join(dir, "b", "spectrum.png")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.emd")
	if err := os.WriteFile(cut, b[:len(b)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = RunIsolated(context.Background(), workers, cut, filepath.Join(dir, "c"), Options{}, sandbox.Limits{})
	if !errors.Is(err, emd.ErrFormat) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated file in a child: %v, want ErrFormat naming the truncation", err)
	}
}

// TestRunBerkeleyMovie: a movie stored as a Berkeley (NCEM) time series,
// (T, H, W) with a first axis named "time" (as ncempy and h5py write it),
// is analysed as a movie: two particles followed through its 8 frames, in
// its own seconds and nanometres (it failed: its first frame was read as
// the whole series).
func TestRunBerkeleyMovie(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "series.emd")
	emdtest.BerkeleySeries(t, path, `
rng = np.random.default_rng(1)
yy, xx = np.mgrid[0:96, 0:96]
frames = []
for t in range(8):
    img = 100.0 + np.zeros((96, 96))
    for x, y in ((30 + 0.5 * t, 30.0), (60.0, 50 + 0.5 * t)):
        img += 400 * (np.hypot(xx - x, yy - y) <= 4)
    frames.append(rng.poisson(img))
data = np.array(frames).astype("uint16")
`, 0.5, 0.2)
	out := filepath.Join(dir, "out")
	if _, err := Run(context.Background(), path, out, Options{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "tracks.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	frames := map[string]int{}
	for _, r := range rows[1:] {
		frames[r[col["track"]]]++
		if r[col["frame"]] == "1" && r[col["time_s"]] != "0.5000" {
			t.Errorf("frame 1 at %s s; want 0.5", r[col["time_s"]])
		}
		if d, _ := strconv.ParseFloat(r[col["diameter_nm"]], 64); d < 1.4 || d > 1.8 {
			t.Errorf("diameter %s nm; want about 1.6 (8 px of 0.2 nm)", r[col["diameter_nm"]])
		}
	}
	if len(frames) != 2 || frames["0"] != 8 || frames["1"] != 8 {
		t.Errorf("tracks and their frames %v; want two tracks of 8 frames", frames)
	}
}

package hyperspectral

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/picoflow/picoflow/internal/emd"
	"github.com/picoflow/picoflow/internal/xray"
)

const python = "/usr/bin/python3"

type simulation struct {
	Elements []string `json:"elements"`
	Scale    float64  `json:"scale"`
	Offset   float64  `json:"offset"`
	BeamKeV  float64  `json:"beam_kev"`
	NY, NX   int
	Channels int
	Cube     []float64 // ny*nx*channels
	Conc     []float64 // ny*nx*len(Elements)
}

// simulate runs the independent simulator (testdata/xraysim.py, physics from
// xraylib) and reads its output.
func simulate(t testing.TB, seed int, spec map[string]any) *simulation {
	t.Helper()
	out := filepath.Join(t.TempDir(), "sim.npz")
	js, _ := json.Marshal(spec)
	if b, err := exec.Command(python, "testdata/xraysim.py", out, fmt.Sprint(seed), string(js)).CombinedOutput(); err != nil {
		t.Fatalf("xraysim: %v\n%s", err, b)
	}
	arr, err := readNPZ(out)
	if err != nil {
		t.Fatal(err)
	}
	var s simulation
	if err := json.Unmarshal(arr["meta"].Raw, &s); err != nil {
		t.Fatal(err)
	}
	c := arr["cube"]
	s.NY, s.NX, s.Channels, s.Cube, s.Conc = c.Shape[0], c.Shape[1], c.Shape[2], c.Data, arr["conc"].Data
	return &s
}

func (s *simulation) spectrum() []float64 {
	out := make([]float64, s.Channels)
	for i, v := range s.Cube {
		out[i%s.Channels] += v
	}
	return out
}

// stream turns a simulated cube into a Velox-like event stream (one
// detector, one frame) for AnalyzeStream.
func (s *simulation) stream() *emd.Stream {
	ev := make([]uint16, 0, len(s.Cube)/4)
	for px := range s.NY * s.NX {
		for c := range s.Channels {
			for range int(s.Cube[px*s.Channels+c]) {
				ev = append(ev, uint16(c))
			}
		}
		ev = append(ev, 65535)
	}
	return &emd.Stream{NY: s.NY, NX: s.NX, Channels: s.Channels, Frames: 1, Detectors: [][]uint16{ev},
		Energy: emd.Axis{Size: s.Channels, Scale: s.Scale, Offset: s.Offset, Units: "keV"}}
}

func pearson(a []float32, b []float32) float64 {
	n := float64(len(a))
	var ma, mb float64
	for i := range a {
		ma += float64(a[i])
		mb += float64(b[i])
	}
	ma, mb = ma/n, mb/n
	var sab, saa, sbb float64
	for i := range a {
		x, y := float64(a[i])-ma, float64(b[i])-mb
		sab += x * y
		saa += x * x
		sbb += y * y
	}
	if saa == 0 || sbb == 0 {
		return 0
	}
	return sab / math.Sqrt(saa*sbb)
}

// accuracySets are the element sets of the accuracy test: every overlap
// group microscopists run into (Ti/V/Ba/O, S/Mo/Pb, Au/Pt, W/Si, N/C/O,
// Pt/Ni) and common materials, each on a carbon support film.
var accuracySets = [][]string{
	{"Ti", "V"}, {"Ba", "Ti"}, {"Ti", "O"}, {"Ba", "Ti", "O"}, {"S", "Mo", "Pb"}, {"Mo", "S"}, {"Pb", "S"},
	{"Au", "Pt"}, {"W", "Si"}, {"N", "O"}, {"Pt", "Ni"}, {"Fe", "Au"}, {"Cu", "Zn"}, {"Fe", "Cr", "Ni"},
	{"Al", "Mg", "Si"}, {"Ca", "P", "O"}, {"Ag", "Pd"}, {"Co", "Fe"}, {"Mn", "Fe"}, {"Ce", "O"},
	{"Sn", "In"}, {"Ga", "As"}, {"Ta", "Hf"}, {"Cu", "O"}, {"Ni", "Ti"}, {"Pd", "Au"}, {"Al", "Cu"},
	{"Zn", "S"}, {"Sr", "Ti", "O"}, {"La", "Mn", "O"}, {"Si", "O"}, {"K", "Cl", "Na"}, {"Cr", "Co"}, {"Ag", "Au"},
}

// TestIdentificationAccuracy: spectrum images simulated with physics that
// is not our line table (xraylib: line energies, radiative rates,
// fluorescence yields; Kramers bremsstrahlung, detector efficiency, Fano
// broadening, Si escape and sum peaks, the zero peak, Poisson noise), at
// 20-500 X-rays per pixel. The elements the fit keeps are compared with
// the truth (the support film counts), and each element map with the true
// concentration map.
func TestIdentificationAccuracy(t *testing.T) {
	t.Parallel()
	counts := []int{20, 50, 100, 200, 500}
	type outcome struct {
		tp, fp, fn int
		corr       []float64
		log        string
	}
	results := make([]outcome, len(accuracySets))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, els := range accuracySets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cpp := counts[i%len(counts)]
			sim := simulate(t, 100+i, map[string]any{"elements": els, "support": "C", "ny": 40, "nx": 40, "counts": cpp})
			res, err := AnalyzeStream(context.Background(), sim.stream(), emd.Axis{}, emd.Axis{}, Options{Identify: IdentifyOptions{BeamEnergy: sim.BeamKeV}})
			if err != nil {
				t.Error(err)
				return
			}
			o := &results[i]
			got := res.ElementSymbols()
			for _, el := range sim.Elements {
				if slices.Contains(got, el) {
					o.tp++
				} else {
					o.fn++
				}
			}
			for k, el := range got {
				e := slices.Index(sim.Elements, el)
				if e < 0 {
					o.fp++
					continue
				}
				truth := make([]float32, sim.NY*sim.NX)
				for px := range truth {
					truth[px] = float32(sim.Conc[px*len(sim.Elements)+e])
				}
				if res.MapBin > 1 {
					truth, _, _ = binMap(truth, sim.NY, sim.NX, res.MapBin)
				}
				if k < len(res.Maps) {
					o.corr = append(o.corr, pearson(res.Maps[k], truth))
				}
			}
			o.log = fmt.Sprintf("%-14v %3d/px: found %v, map r %.2f (bin %d)", sim.Elements, cpp, got, o.corr, res.MapBin)
		})
	}
	wg.Wait()
	var tp, fp, fn int
	var corr []float64
	for _, o := range results {
		tp, fp, fn = tp+o.tp, fp+o.fp, fn+o.fn
		corr = append(corr, o.corr...)
		t.Log(o.log)
	}
	precision, recall := float64(tp)/float64(tp+fp), float64(tp)/float64(tp+fn)
	slices.Sort(corr)
	median, worst := corr[len(corr)/2], corr[0]
	t.Logf("%d element sets: precision %.3f, recall %.3f (%d found, %d false, %d missed); map correlation median %.3f, worst %.3f",
		len(accuracySets), precision, recall, tp, fp, fn, median, worst)
	if precision < 0.98 || recall < 0.95 {
		t.Errorf("precision %.3f (want >= 0.98), recall %.3f (want >= 0.95)", precision, recall)
	}
	if median < 0.9 || worst < 0.8 {
		t.Errorf("map correlation median %.3f (want >= 0.9), worst %.3f (want >= 0.8)", median, worst)
	}
}

// TestCliffLorimerMatchesHyperSpy: the same intensities and k-factors give
// HyperSpy's Cliff-Lorimer weight and atomic percent.
func TestCliffLorimerMatchesHyperSpy(t *testing.T) {
	t.Parallel()
	syms := []string{"Fe", "Cr", "Ni", "Si"}
	in := []float64{1000, 512, 233, 77}
	k := []float64{1.21, 1.07, 1.38, 1}
	script := `
import sys, json, numpy as np
from hyperspy.misc.eds.utils import quantification_cliff_lorimer
from hyperspy.misc.material import weight_to_atomic
a = json.loads(sys.argv[1])
w = quantification_cliff_lorimer(np.array(a["i"], dtype=float).reshape(-1, 1), a["k"]).ravel() * 100
print(json.dumps({"weight": list(w), "atomic": list(weight_to_atomic(w, a["el"]))}))
`
	arg, _ := json.Marshal(map[string]any{"i": in, "k": k, "el": syms})
	out, err := exec.Command(python, "-c", script, string(arg)).Output()
	if err != nil {
		t.Fatalf("hyperspy: %v", err)
	}
	var ref struct{ Weight, Atomic []float64 }
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatal(err)
	}
	var aw []float64
	for _, s := range syms {
		a, _ := xray.AtomOf(s)
		aw = append(aw, a.Weight)
	}
	wt, at := CliffLorimer(in, k, aw)
	for i := range syms {
		if math.Abs(wt[i]-ref.Weight[i]) > 1e-6 || math.Abs(at[i]-ref.Atomic[i]) > 0.01 {
			t.Errorf("%s: %.4f wt%% %.4f at%%; HyperSpy %.4f wt%% %.4f at%%", syms[i], wt[i], at[i], ref.Weight[i], ref.Atomic[i])
		}
	}
}

// TestQuantificationAccuracy: homogeneous alloy regions of spectrum images
// simulated with xraylib's physics are quantified (fitted intensities,
// theoretical k-factors, Cliff-Lorimer) within 10 % relative of the true
// composition.
func TestQuantificationAccuracy(t *testing.T) {
	t.Parallel()
	for i, alloy := range []map[string]float64{
		{"Fe": 0.7, "Cr": 0.2, "Ni": 0.1}, {"Cu": 0.6, "Zn": 0.4}, {"Ni": 0.55, "Ti": 0.45}, {"Co": 0.5, "Cr": 0.3, "Mo": 0.2},
	} {
		var els []string
		for el := range alloy {
			els = append(els, el)
		}
		slices.Sort(els)
		sim := simulate(t, 300+i, map[string]any{"elements": els, "support": "C", "ny": 64, "nx": 64, "counts": 300, "alloy": alloy})
		res, err := AnalyzeStream(context.Background(), sim.stream(), emd.Axis{}, emd.Axis{}, Options{Identify: IdentifyOptions{BeamEnergy: sim.BeamKeV}})
		if err != nil {
			t.Fatal(err)
		}
		// The alloy block: the top-left quarter of the image.
		region := res.regionResult(func(y, x int) bool { return y < sim.NY/4 && x < sim.NX/4 })
		comp, err := region.Quantify(QuantOptions{BeamEnergy: sim.BeamKeV, Exclude: []string{"C"}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range comp.Components {
			want := alloy[c.Element]
			rel := (c.WeightPercent/100 - want) / want
			got = append(got, fmt.Sprintf("%s %.1f wt%% (true %.1f, %+.1f%%, k %.2f)", c.Element, c.WeightPercent, 100*want, 100*rel, c.KFactor))
			if want == 0 || math.Abs(rel) > 0.10 {
				t.Errorf("%v: %s %.1f wt%%, true %.1f wt%% (%+.1f%% relative)", els, c.Element, c.WeightPercent, 100*want, 100*rel)
			}
		}
		if len(comp.Components) != len(alloy) {
			t.Errorf("%v: composition of %d elements: %+v", els, len(comp.Components), comp.Components)
		}
		t.Logf("%v", got)
	}
}

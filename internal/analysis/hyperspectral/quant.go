package hyperspectral

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/picoflow/picoflow/internal/xray"
)

// Quantification: the Cliff-Lorimer ratio method for thin specimens,
// C_A / C_B = k_AB · I_A / I_B, with the fitted net intensities of each
// element's family. Theoretical k-factors come from standard physics
// tables (xraylib's atomic weights, edges and fluorescence yields; Casnati's
// K-shell ionisation cross section with Quarles' relativistic factor,
// used for every shell; an SDD's efficiency from its window and crystal),
// relative to Si K as is customary; a facility overrides them with
// measured ones.

// Detector is an EDS detector as the k-factors see it.
type Detector struct {
	// WindowC is the polymer window as carbon (µm), WindowAl its
	// aluminium coating (nm), DeadSi the crystal's dead layer (nm) and
	// Thickness the crystal (mm).
	WindowC, WindowAl, DeadSi, Thickness float64
}

// DefaultDetector is a windowed silicon drift detector.
var DefaultDetector = Detector{WindowC: 0.2, WindowAl: 40, DeadSi: 30, Thickness: 0.5}

// Efficiency is the fraction of X-rays of e keV the detector records.
func (d Detector) Efficiency(e float64) float64 {
	const rhoC, rhoAl, rhoSi = 1.4, 2.7, 2.33
	win := math.Exp(-xray.MassAttenuation(6, e)*rhoC*d.WindowC*1e-4 - xray.MassAttenuation(13, e)*rhoAl*d.WindowAl*1e-7)
	dead := math.Exp(-xray.MassAttenuation(14, e) * rhoSi * d.DeadSi * 1e-7)
	abs := 1 - math.Exp(-xray.MassAttenuation(14, e)*rhoSi*d.Thickness*0.1)
	return win * dead * abs
}

// crossSection is Casnati's ionisation cross section (arbitrary units) of a
// shell with edge ec (keV) by electrons of e0 keV, with Quarles'
// relativistic factor.
func crossSection(ec, e0 float64) float64 {
	u := e0 / ec
	if u <= 1 {
		return 0
	}
	const rydberg = 0.013606 // keV
	d := -0.0318 + 0.3160/u - 0.1135/(u*u)
	psi := math.Pow(ec/rydberg, d)
	phi := 10.57 * math.Exp(-1.736/u+0.317/(u*u))
	j := 511.0 / ec
	rel := (1 + 2*j) / (u + 2*j) * math.Pow((u+j)/(1+j), 2) *
		math.Pow((1+u)*(u+2*j)*(1+j)*(1+j)/(j*j*(1+2*j)+u*(u+2*j)*(1+j)*(1+j)), 1.5)
	return psi * phi * math.Log(u) / (u * ec * ec) * rel
}

// shellElectrons weights the families: a whole K, L or M shell.
var shellElectrons = map[string]float64{"K": 2, "L": 8, "M": 18}

// generation is the family's X-ray yield per atom (arbitrary units).
func generation(sym, family string, e0 float64) (float64, xray.Atom, error) {
	a, ok := xray.AtomOf(sym)
	if !ok {
		return 0, a, fmt.Errorf("k-factor: no physics for %s", sym)
	}
	sh, ok := a.Shells[family]
	if !ok || sh.Edge <= 0 || sh.Yield <= 0 {
		return 0, a, fmt.Errorf("k-factor: no %s shell data for %s", family, sym)
	}
	q := crossSection(sh.Edge, e0)
	if q <= 0 {
		return 0, a, fmt.Errorf("k-factor: %s %s is not excited by %g keV electrons", sym, family, e0)
	}
	return shellElectrons[family] * q * sh.Yield, a, nil
}

// KFactor returns the theoretical Cliff-Lorimer k-factor of an element's
// family relative to Si K, for beam energy e0 (keV), with the family's
// main line at energy line (keV): C_A/C_Si = k · I_A/I_Si.
func KFactor(sym, family string, line, e0 float64, det Detector) (float64, error) {
	g, a, err := generation(sym, family, e0)
	if err != nil {
		return 0, err
	}
	gSi, aSi, err := generation("Si", "K", e0)
	if err != nil {
		return 0, err
	}
	return (a.Weight / (g * det.Efficiency(line))) / (aSi.Weight / (gSi * det.Efficiency(1.7398))), nil
}

// Component is one element of a composition.
type Component struct {
	Element string  `json:"element"`
	Family  string  `json:"family"`
	Line    string  `json:"line"`
	KFactor float64 `json:"k_factor"`
	// Intensity is the fitted net counts used.
	Intensity     float64 `json:"intensity"`
	WeightPercent float64 `json:"weight_percent"`
	AtomicPercent float64 `json:"atomic_percent"`
}

// Composition is a Cliff-Lorimer quantification.
type Composition struct {
	BeamEnergy float64     `json:"beam_energy_kev"`
	Method     string      `json:"method"`
	Components []Component `json:"components"`
	// Excluded lists elements left out (no k-factor, or asked to be: the
	// support film).
	Excluded []string `json:"excluded,omitempty"`
}

// QuantOptions configure Quantify.
type QuantOptions struct {
	// BeamEnergy in keV (required).
	BeamEnergy float64
	// KFactors override the theoretical ones by element symbol (the
	// family used is the element's map family).
	KFactors map[string]float64
	// Exclude leaves elements out of the composition (the support film,
	// a grid), by symbol.
	Exclude  []string
	Detector *Detector
}

// CliffLorimer turns intensities into weight and atomic percent with
// k-factors: C_i = k_i I_i / Σ k_j I_j, atomic from weight with the atomic
// weights.
func CliffLorimer(intensity, k, atomicWeight []float64) (weight, atomic []float64) {
	n := len(intensity)
	weight, atomic = make([]float64, n), make([]float64, n)
	var sw, sa float64
	for i := range n {
		weight[i] = k[i] * math.Max(intensity[i], 0)
		sw += weight[i]
	}
	if sw == 0 {
		return weight, atomic
	}
	for i := range n {
		weight[i] *= 100 / sw
		atomic[i] = weight[i] / atomicWeight[i]
		sa += atomic[i]
	}
	for i := range n {
		atomic[i] *= 100 / sa
	}
	return weight, atomic
}

// Quantify computes the composition of the whole spectrum from the
// elements' fitted intensities (their map families).
func (r *Result) Quantify(opt QuantOptions) (*Composition, error) {
	if opt.BeamEnergy <= 0 {
		return nil, fmt.Errorf("quantify: no beam energy")
	}
	det := DefaultDetector
	if opt.Detector != nil {
		det = *opt.Detector
	}
	c := &Composition{BeamEnergy: opt.BeamEnergy, Method: "Cliff-Lorimer, theoretical k-factors relative to Si K"}
	if len(opt.KFactors) > 0 {
		c.Method = "Cliff-Lorimer, k-factors given where set, theoretical otherwise"
	}
	var in, ks, ws []float64
	for _, el := range r.Elements {
		if slices.Contains(opt.Exclude, el.Symbol) {
			c.Excluded = append(c.Excluded, el.Symbol)
			continue
		}
		k, ok := opt.KFactors[el.Symbol]
		if !ok {
			var err error
			if k, err = KFactor(el.Symbol, el.Family, el.Energy, opt.BeamEnergy, det); err != nil {
				c.Excluded = append(c.Excluded, el.Symbol)
				continue
			}
		}
		a, _ := xray.AtomOf(el.Symbol)
		c.Components = append(c.Components, Component{Element: el.Symbol, Family: el.Family, Line: el.Line, KFactor: k, Intensity: el.Counts})
		in, ks, ws = append(in, el.Counts), append(ks, k), append(ws, a.Weight)
	}
	wt, at := CliffLorimer(in, ks, ws)
	for i := range c.Components {
		c.Components[i].WeightPercent, c.Components[i].AtomicPercent = wt[i], at[i]
	}
	sort.Slice(c.Components, func(a, b int) bool { return c.Components[a].AtomicPercent > c.Components[b].AtomicPercent })
	return c, nil
}

// regionResult returns a copy of r whose elements' intensities are the
// sums of their maps over the pixels in region (map pixels, binned as the
// maps are), for quantifying a region of a spectrum image.
func (r *Result) regionResult(in func(y, x int) bool) *Result {
	out := *r
	out.Elements = append([]Element(nil), r.Elements...)
	b := max(r.MapBin, 1)
	for k := range out.Elements {
		if k >= len(r.Maps) {
			break
		}
		var s float64
		for y := range r.MapNY {
			for x := range r.MapNX {
				if in(y*b, x*b) {
					s += float64(r.Maps[k][y*r.MapNX+x])
				}
			}
		}
		out.Elements[k].Counts = s
	}
	return &out
}

// QuantifyAll fills r.Composition and, for spectrum images, the per-pixel
// atomic percent maps (pixels with fewer than minCounts net counts over
// the quantified elements are NaN).
func (r *Result) QuantifyAll(opt QuantOptions) error {
	c, err := r.Quantify(opt)
	if err != nil {
		return err
	}
	r.Composition = c
	if len(r.Maps) == 0 || len(c.Components) == 0 {
		return nil
	}
	const minCounts = 20
	idx := make([]int, len(c.Components))
	aw := make([]float64, len(c.Components))
	ks := make([]float64, len(c.Components))
	for i, comp := range c.Components {
		idx[i] = -1
		for k, el := range r.Elements {
			if el.Symbol == comp.Element {
				idx[i] = k
			}
		}
		a, _ := xray.AtomOf(comp.Element)
		aw[i], ks[i] = a.Weight, comp.KFactor
	}
	r.CompositionMaps = make([][]float32, len(r.Elements))
	npix := r.MapNY * r.MapNX
	for _, k := range idx {
		if k >= 0 {
			r.CompositionMaps[k] = make([]float32, npix)
		}
	}
	in := make([]float64, len(idx))
	for px := range npix {
		var tot float64
		for i, k := range idx {
			in[i] = 0
			if k >= 0 && k < len(r.Maps) {
				in[i] = math.Max(float64(r.Maps[k][px]), 0)
			}
			tot += in[i]
		}
		_, at := CliffLorimer(in, ks, aw)
		for i, k := range idx {
			if k < 0 {
				continue
			}
			if tot < minCounts {
				r.CompositionMaps[k][px] = float32(math.NaN())
			} else {
				r.CompositionMaps[k][px] = float32(at[i])
			}
		}
	}
	return nil
}

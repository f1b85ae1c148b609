package hyperspectral

import (
	"math"
	"slices"
	"sort"

	"github.com/picoflow/picoflow/internal/xray"
)

// The spectrum model: a smooth non-negative background (cubic B-splines)
// plus one component per element family (K, L or M), whose lines sit at
// the table's energies with the table's relative weights, each a Gaussian
// as wide as the detector's resolution at its energy. The amplitudes are
// found by non-negative least squares with Poisson weights; an element
// family stays in the model only while its amplitude is significant, so
// overlapping families (Ti Kb on V Ka, S K on Mo L and Pb M) are told apart
// by their other lines instead of by single peaks.

// FamilyFit is one element family's fitted intensity.
type FamilyFit struct {
	Element string  `json:"element"`
	Family  string  `json:"family"` // K, L or M
	Line    string  `json:"line"`   // its strongest line in range
	Energy  float64 `json:"energy"` // keV, of Line
	// Counts is the fitted net counts of the whole family.
	Counts float64 `json:"counts"`
	// Sigma is the standard error of Counts; Significance Counts/Sigma.
	Sigma        float64 `json:"sigma"`
	Significance float64 `json:"significance"`
}

// SpectrumFit is a fitted spectrum.
type SpectrumFit struct {
	Families []FamilyFit `json:"families"`
	// Lo and Hi bound the fitted channels [Lo, Hi).
	Lo, Hi int `json:"-"`
	// Model and Background hold the fitted counts per channel over the
	// whole spectrum (zero outside [Lo, Hi)).
	Model      []float64 `json:"-"`
	Background []float64 `json:"-"`
	// ReducedChi2 is the fit's chi² per degree of freedom.
	ReducedChi2 float64 `json:"reduced_chi2"`

	shapes [][]float64 // unit-area shapes of Families over [Lo, Hi)
	bgUnit []float64   // Background / its sum over [Lo, Hi)
}

type family struct {
	el, fam, line string
	z             int
	energy        float64
	lines         []xray.Line
}

// notSought are elements the search leaves out unless asked for
// (FitOptions.Only): noble gases other than Ar (which ion milling
// implants), elements with no stable isotope, and beyond U. They are not in
// specimens, and their lines coincide with common ones (Ne Ka is Ni La,
// Kr L is Si Kb's neighbour), so a small misfit of those would name them.
var notSought = map[string]bool{
	"He": true, "Ne": true, "Kr": true, "Xe": true, "Rn": true, "Tc": true, "Pm": true,
	"Po": true, "At": true, "Fr": true, "Ra": true, "Ac": true, "Pa": true, "Np": true, "Pu": true,
	"Am": true, "Cm": true, "Bk": true, "Cf": true,
}

// families lists the element families with a main line in [emin, emax].
func families(emin, emax float64, only []string) []family {
	by := map[[2]string]*family{}
	var order [][2]string
	for _, l := range xray.Lines() {
		if l.Z < 5 || l.Weight < 0.01 || l.Energy < emin || l.Energy > emax || (notSought[l.Element] && !slices.Contains(only, l.Element)) {
			continue
		}
		k := [2]string{l.Element, l.Family()}
		f := by[k]
		if f == nil {
			f = &family{el: l.Element, fam: l.Family(), z: l.Z}
			by[k] = f
			order = append(order, k)
		}
		f.lines = append(f.lines, l)
		if f.line == "" || l.Weight > weightOf(f.lines, f.line) {
			f.line, f.energy = l.Name, l.Energy
		}
	}
	var out []family
	for _, k := range order {
		f := by[k]
		if weightOf(f.lines, f.line) >= 0.5 { // its main line is in range
			out = append(out, *f)
		}
	}
	return out
}

func weightOf(lines []xray.Line, name string) float64 {
	for _, l := range lines {
		if l.Name == name {
			return l.Weight
		}
	}
	return 0
}

// shape returns a family's unit-area line profile over channels [lo, hi).
func (f family) shape(cal Calibration, lo, hi int, fwhmMn float64) []float64 {
	s := make([]float64, hi-lo)
	var tot float64
	for _, l := range f.lines {
		sig := FWHM(l.Energy, fwhmMn) / 2.3548
		c0 := max(lo, cal.channel(l.Energy-5*sig))
		c1 := min(hi-1, cal.channel(l.Energy+5*sig))
		for c := c0; c <= c1; c++ {
			// The Gaussian integrated over the channel.
			a := (cal.energy(c) - 0.5*cal.Scale - l.Energy) / (sig * math.Sqrt2)
			b := (cal.energy(c) + 0.5*cal.Scale - l.Energy) / (sig * math.Sqrt2)
			v := l.Weight * 0.5 * (math.Erf(b) - math.Erf(a))
			s[c-lo] += v
			tot += v
		}
	}
	if tot > 0 {
		for i := range s {
			s[i] /= tot
		}
	}
	return s
}

// bsplines returns cubic B-spline basis functions over [lo, hi) with
// knots every dense keV below 2 keV (the background bends most there,
// under the detector window's absorption) and wider above.
func bsplines(cal Calibration, lo, hi int) [][]float64 {
	e0, e1 := cal.energy(lo), cal.energy(hi-1)
	var knots []float64
	for e := e0; e < e1; {
		knots = append(knots, e)
		switch {
		case e < 2:
			e += 0.4
		case e < 8:
			e += 1.2
		default:
			e += 2.5
		}
	}
	knots = append(knots, e1+1e-9)
	// Clamp: repeat the ends three times.
	t := append([]float64{knots[0], knots[0], knots[0]}, knots...)
	t = append(t, knots[len(knots)-1], knots[len(knots)-1], knots[len(knots)-1])
	nb := len(t) - 4
	out := make([][]float64, nb)
	for i := range out {
		out[i] = make([]float64, hi-lo)
	}
	for c := lo; c < hi; c++ {
		x := cal.energy(c)
		for i := range nb {
			out[i][c-lo] = bspline(t, i, 3, x)
		}
	}
	return out
}

// bspline evaluates the B-spline basis function i of degree k at x (Cox–de
// Boor).
func bspline(t []float64, i, k int, x float64) float64 {
	if k == 0 {
		if t[i] <= x && x < t[i+1] {
			return 1
		}
		return 0
	}
	var a, b float64
	if d := t[i+k] - t[i]; d > 0 {
		a = (x - t[i]) / d * bspline(t, i, k-1, x)
	}
	if d := t[i+k+1] - t[i+1]; d > 0 {
		b = (t[i+k+1] - x) / d * bspline(t, i+1, k-1, x)
	}
	return a + b
}

// modelError is the relative uncertainty of the model's line intensities
// at energy e (keV), see the weights in FitSpectrum: 8 %, rising below
// 1 keV, where the relative weights of L and M lines, the window's
// absorption and incomplete charge collection are known worst (to 20 %).
func modelError(e float64) float64 { return 0.08 + 0.15*math.Exp(-e/0.7) }

// FitOptions tune the spectrum fit.
type FitOptions struct {
	// FWHMMn is the detector resolution at Mn Ka (keV); default 0.130.
	FWHMMn float64
	// MinEnergy and MaxEnergy bound the fit (keV); defaults 0.2 and the
	// highest energy with counts, at most 0.95 of BeamEnergy when given.
	MinEnergy, MaxEnergy, BeamEnergy float64
	// MinSignificance keeps a family in the model (standard errors of its
	// amplitude); default 6.
	MinSignificance float64
	// Only, when set, fits just these element symbols (no search).
	Only []string
}

// FitSpectrum fits the model to a summed spectrum and keeps the element
// families that explain it significantly.
func FitSpectrum(counts []float64, cal Calibration, opt FitOptions) *SpectrumFit {
	if opt.FWHMMn <= 0 {
		opt.FWHMMn = 0.130
	}
	if opt.MinEnergy <= 0 {
		opt.MinEnergy = DefaultMinXRayEnergy
	}
	if opt.MinSignificance <= 0 {
		opt.MinSignificance = 6
	}
	n := len(counts)
	fit := &SpectrumFit{Model: make([]float64, n), Background: make([]float64, n)}
	if n < 16 || cal.Scale <= 0 {
		return fit
	}
	// The range: from MinEnergy to where the counts end (the last channel
	// below which 99.9 % of the X-rays lie, plus 1 keV).
	lo := max(0, cal.channel(opt.MinEnergy))
	var tot, acc float64
	for c := lo; c < n; c++ {
		tot += counts[c]
	}
	hi := n
	for c := lo; c < n; c++ {
		if acc += counts[c]; acc >= 0.999*tot {
			hi = min(n, c+int(1/cal.Scale))
			break
		}
	}
	emax := cal.energy(hi - 1)
	if opt.MaxEnergy > 0 {
		emax = math.Min(emax, opt.MaxEnergy)
	}
	if opt.BeamEnergy > 0 {
		emax = math.Min(emax, 0.95*opt.BeamEnergy)
	}
	hi = min(hi, cal.channel(emax)+1)
	if hi-lo < 16 {
		return fit
	}
	fit.Lo, fit.Hi = lo, hi
	fams := families(opt.MinEnergy+0.01, emax, opt.Only)
	if len(opt.Only) > 0 {
		fams = slices.DeleteFunc(fams, func(f family) bool { return !slices.Contains(opt.Only, f.el) })
	}
	shapes := make([][]float64, len(fams))
	for i, f := range fams {
		shapes[i] = f.shape(cal, lo, hi, opt.FWHMMn)
	}
	bg := bsplines(cal, lo, hi)
	y := counts[lo:hi]
	// Weights: Poisson variance from a smoothed spectrum (the data itself
	// would favour downward fluctuations) plus a systematic part, the
	// model's own uncertainty: line weights and shapes known to a few per
	// cent (tables differ by that much), which a count-only variance would
	// turn into "significant" phantom elements under every strong peak.
	w := make([]float64, len(y))
	sm := smooth(y, 2)
	for i, v := range sm {
		v = math.Max(v, 1)
		e := modelError(cal.energy(lo + i))
		w[i] = 1 / (v + e*e*v*v)
	}
	keep := make([]bool, len(fams))
	for i := range keep {
		keep[i] = true
	}
	var amps, sig []float64
	for round := 0; round < 40; round++ {
		var cols [][]float64
		var idx []int
		for i, k := range keep {
			if k {
				cols = append(cols, shapes[i])
				idx = append(idx, i)
			}
		}
		nf := len(cols)
		cols = append(cols, bg...)
		free := make([]bool, len(cols))
		x, cov := solveWeighted(cols, y, w, free)
		if x == nil {
			return fit
		}
		amps, sig = make([]float64, len(fams)), make([]float64, len(fams))
		weakest, wi := math.Inf(1), -1
		for k, i := range idx {
			amps[i] = x[k]
			sig[i] = math.Sqrt(math.Max(cov[k], 1e-300))
			s := amps[i] / sig[i]
			if s < opt.MinSignificance && s < weakest {
				weakest, wi = s, i
			}
		}
		if wi < 0 {
			// Refit the model for the record: background and families.
			for c := range hi - lo {
				var b, m float64
				for j := nf; j < len(cols); j++ {
					b += x[j] * cols[j][c]
				}
				m = b
				for j := range nf {
					m += x[j] * cols[j][c]
				}
				fit.Background[lo+c], fit.Model[lo+c] = b, m
			}
			break
		}
		// Drop the weakest insignificant families; many at once early on.
		drop := 1
		if nf > 40 {
			drop = nf / 4
		}
		type ws struct {
			i int
			s float64
		}
		var weak []ws
		for _, i := range idx {
			if s := amps[i] / sig[i]; s < opt.MinSignificance {
				weak = append(weak, ws{i, s})
			}
		}
		sort.Slice(weak, func(a, b int) bool { return weak[a].s < weak[b].s })
		for _, v := range weak[:min(drop, len(weak))] {
			keep[v.i] = false
		}
	}
	var chi2 float64
	for c := lo; c < hi; c++ {
		d := counts[c] - fit.Model[c]
		chi2 += d * d / math.Max(fit.Model[c], 1)
	}
	if len(opt.Only) == 0 {
		// An element is there when its hardest family in the range is: a
		// lone L or M family of an element whose K (or L) lines the beam
		// excites in the range is a misfit of a neighbour (Ca L beside
		// C Ka, Sr L under Si K), not the element. Refit with those.
		hardest := map[string]family{}
		for _, f := range fams {
			if h, ok := hardest[f.el]; !ok || f.energy > h.energy {
				hardest[f.el] = f
			}
		}
		var els []string
		for i, k := range keep {
			if k && fams[i].fam == hardest[fams[i].el].fam && !slices.Contains(els, fams[i].el) {
				els = append(els, fams[i].el)
			}
		}
		if len(els) == 0 {
			els = []string{"C"} // nothing: a background-only refit
		}
		opt.Only = els
		return FitSpectrum(counts, cal, opt)
	}
	nk := 0
	for i, k := range keep {
		if !k {
			continue
		}
		nk++
		fit.Families = append(fit.Families, FamilyFit{Element: fams[i].el, Family: fams[i].fam, Line: fams[i].line, Energy: fams[i].energy,
			Counts: amps[i], Sigma: sig[i], Significance: amps[i] / sig[i]})
		fit.shapes = append(fit.shapes, shapes[i])
	}
	fit.ReducedChi2 = chi2 / float64(max(hi-lo-nk-len(bg), 1))
	var bsum float64
	for c := lo; c < hi; c++ {
		bsum += fit.Background[c]
	}
	fit.bgUnit = make([]float64, hi-lo)
	if bsum > 0 {
		for c := lo; c < hi; c++ {
			fit.bgUnit[c-lo] = fit.Background[c] / bsum
		}
	}
	return fit
}

// solveWeighted solves the weighted non-negative least squares problem
// min Σ w_i (y_i - Σ_j x_j col_j[i])², x ≥ 0 (except free columns), and
// returns x and the variances of x from the inverse of the normal matrix
// over the columns that are not at zero.
func solveWeighted(cols [][]float64, y, w []float64, free []bool) (x, variance []float64) {
	m := len(cols)
	G := make([]float64, m*m)
	h := make([]float64, m)
	// Sparse columns: only where a column is non-zero.
	type span struct{ a, b int }
	spans := make([]span, m)
	for j, c := range cols {
		a, b := 0, len(c)
		for a < b && c[a] == 0 {
			a++
		}
		for b > a && c[b-1] == 0 {
			b--
		}
		spans[j] = span{a, b}
	}
	for j := range m {
		cj, sj := cols[j], spans[j]
		for i := sj.a; i < sj.b; i++ {
			h[j] += w[i] * cj[i] * y[i]
		}
		for k := j; k < m; k++ {
			ck, sk := cols[k], spans[k]
			a, b := max(sj.a, sk.a), min(sj.b, sk.b)
			var s float64
			for i := a; i < b; i++ {
				s += w[i] * cj[i] * ck[i]
			}
			G[j*m+k], G[k*m+j] = s, s
		}
	}
	x, err := nnls(G, h, m, free)
	if err != nil {
		return nil, nil
	}
	// Covariance over the columns in the solution.
	var act []int
	for j := range m {
		if x[j] > 0 || free[j] {
			act = append(act, j)
		}
	}
	variance = make([]float64, m)
	for j := range variance {
		variance[j] = math.Inf(1)
	}
	n := len(act)
	if n == 0 {
		return x, variance
	}
	sub := make([]float64, n*n)
	for r, i := range act {
		for c, j := range act {
			sub[r*n+c] = G[i*m+j]
		}
	}
	inv, err := invertSPD(sub, n)
	if err != nil {
		return x, variance
	}
	for r, i := range act {
		variance[i] = inv[r*n+r]
	}
	// A column at zero: its standard error as if alone with the others.
	for j := range m {
		if math.IsInf(variance[j], 1) && G[j*m+j] > 0 {
			variance[j] = 1 / G[j*m+j]
		}
	}
	return x, variance
}

package hyperspectral

import (
	"math"
	"sort"
)

// FWHM returns the detector's energy resolution (keV) at energy e (keV),
// from the Mn Ka resolution fwhmMn (keV) with the usual Fano-noise scaling
// FWHM² = FWHM_Mn² + 2.5 eV·(E − 5.899 keV).
func FWHM(e, fwhmMn float64) float64 {
	ev := fwhmMn*1000*fwhmMn*1000 + 2.5*(e*1000-5899)
	return math.Sqrt(math.Max(ev, 45*45)) / 1000
}

// Calibration maps channels to energies: E(i) = Offset + i*Scale (keV).
type Calibration struct{ Offset, Scale float64 }

func (c Calibration) energy(i int) float64 { return c.Offset + float64(i)*c.Scale }

func (c Calibration) channel(e float64) int { return int(math.Round((e - c.Offset) / c.Scale)) }

// Peak is a significant peak found in a spectrum.
type Peak struct {
	Energy       float64 `json:"energy"`       // keV
	NetCounts    float64 `json:"net_counts"`   // counts above background within ±0.6 FWHM
	Significance float64 `json:"significance"` // net / sqrt(gross), in standard deviations
}

// LineMatch is an X-ray line of an identified element that matched a peak.
type LineMatch struct {
	Line         string  `json:"line"`
	Energy       float64 `json:"energy"`
	PeakEnergy   float64 `json:"peak_energy"`
	NetCounts    float64 `json:"net_counts"`
	Significance float64 `json:"significance"`
}

// Element is an element identified in a spectrum.
type Element struct {
	Symbol string `json:"symbol"`
	Z      int    `json:"z"`
	// Family (K, L or M) is the one its map shows: the most significant in
	// the fit; Line and Energy its strongest line, Counts its fitted net
	// counts in the summed spectrum, Sigma their standard error.
	Family       string      `json:"family"`
	Line         string      `json:"line"`
	Energy       float64     `json:"energy"`
	Counts       float64     `json:"counts"`
	Sigma        float64     `json:"sigma"`
	Significance float64     `json:"significance"`
	Lines        []LineMatch `json:"lines"`
	// Window is the energy window (keV) of the element map.
	Window [2]float64 `json:"window"`
}

// IdentifyOptions tune peak detection and element identification.
type IdentifyOptions struct {
	// FWHMMn is the detector resolution at Mn Ka in keV. Defaults to 0.130.
	FWHMMn float64
	// MinSignificance is the peak detection threshold in standard
	// deviations. Defaults to 5.
	MinSignificance float64
	// MinEnergy ignores peaks below it (keV; the zero peak). Defaults to 0.2.
	MinEnergy float64
	// BeamEnergy (keV) excludes lines that the beam cannot excite; 0 means
	// no limit.
	BeamEnergy float64
}

func (o IdentifyOptions) withDefaults() IdentifyOptions {
	if o.FWHMMn <= 0 {
		o.FWHMMn = 0.130
	}
	if o.MinSignificance <= 0 {
		o.MinSignificance = 5
	}
	if o.MinEnergy <= 0 {
		o.MinEnergy = 0.2
	}
	return o
}

// Background estimates the continuum under a spectrum with the SNIP
// algorithm (statistics-sensitive non-linear iterative peak clipping) on
// log-log-sqrt transformed counts, clipping windows up to maxHalf channels.
func Background(counts []float64, maxHalf int) []float64 {
	n := len(counts)
	v := make([]float64, n)
	for i, c := range counts {
		v[i] = math.Log(math.Log(math.Sqrt(math.Max(c, 0)+1)+1) + 1)
	}
	w := make([]float64, n)
	for p := maxHalf; p >= 1; p-- {
		copy(w, v)
		for i := p; i < n-p; i++ {
			if a := (v[i-p] + v[i+p]) / 2; a < v[i] {
				w[i] = a
			}
		}
		v, w = w, v
	}
	bg := make([]float64, n)
	for i, x := range v {
		e := math.Exp(math.Exp(x)-1) - 1
		bg[i] = math.Max(e*e-1, 0)
	}
	return bg
}

// smooth convolves counts with a Gaussian of sigma channels.
func smooth(counts []float64, sigma float64) []float64 {
	if sigma < 0.5 {
		return append([]float64(nil), counts...)
	}
	r := int(math.Ceil(3 * sigma))
	k := make([]float64, 2*r+1)
	for i := range k {
		x := float64(i - r)
		k[i] = math.Exp(-x * x / (2 * sigma * sigma))
	}
	out := make([]float64, len(counts))
	for i := range counts {
		var acc, wt float64
		for j, kv := range k {
			if t := i + j - r; t >= 0 && t < len(counts) {
				acc += counts[t] * kv
				wt += kv
			}
		}
		out[i] = acc / wt
	}
	return out
}

// FindPeaks returns the significant peaks of a spectrum, strongest first.
func FindPeaks(counts []float64, cal Calibration, opt IdentifyOptions) []Peak {
	opt = opt.withDefaults()
	if len(counts) < 8 || cal.Scale <= 0 {
		return nil
	}
	fwhmCh := FWHM(5, opt.FWHMMn) / cal.Scale
	sm := smooth(counts, fwhmCh/2.355/2)
	bg := Background(sm, max(2, int(math.Round(2*fwhmCh))))
	net := make([]float64, len(sm))
	for i := range sm {
		net[i] = sm[i] - bg[i]
	}
	var peaks []Peak
	for i := 1; i < len(net)-1; i++ {
		e := cal.energy(i)
		if e < opt.MinEnergy || net[i] <= 0 {
			continue
		}
		half := max(1, int(math.Round(0.5*FWHM(e, opt.FWHMMn)/cal.Scale)))
		isMax := true
		for j := max(0, i-half); j <= min(len(net)-1, i+half); j++ {
			if net[j] > net[i] || (net[j] == net[i] && j < i) {
				isMax = false
				break
			}
		}
		if !isMax {
			continue
		}
		w := max(1, int(math.Round(0.6*FWHM(e, opt.FWHMMn)/cal.Scale)))
		var gross, back float64
		for j := max(0, i-w); j <= min(len(net)-1, i+w); j++ {
			gross += counts[j]
			back += bg[j]
		}
		// SNIP sits on the lower envelope of the noise; where side bands
		// (1.2-1.8 FWHM from the centre) are available, estimate the
		// continuum from them instead, which is unbiased.
		if sb, ok := sideBands(counts, i, w); ok {
			back = math.Max(back, sb*float64(2*w+1))
		}
		netArea := gross - back
		sig := netArea / math.Sqrt(gross+1)
		if sig >= opt.MinSignificance && netArea >= 5 {
			peaks = append(peaks, Peak{Energy: refine(counts, bg, i, w, cal), NetCounts: netArea, Significance: sig})
		}
	}
	sort.Slice(peaks, func(a, b int) bool { return peaks[a].Significance > peaks[b].Significance })
	return peaks
}

// refine returns the background-subtracted centroid energy of a peak.
func refine(counts, bg []float64, i, w int, cal Calibration) float64 {
	var s, sw float64
	for j := max(0, i-w); j <= min(len(counts)-1, i+w); j++ {
		v := math.Max(counts[j]-bg[j], 0)
		s += v
		sw += v * float64(j)
	}
	if s == 0 {
		return cal.energy(i)
	}
	return cal.Offset + sw/s*cal.Scale
}

// sideBands returns the mean counts per channel in two bands beside a peak
// window of half-width w at channel i.
func sideBands(counts []float64, i, w int) (mean float64, ok bool) {
	lo0, lo1 := i-3*w, i-2*w
	hi0, hi1 := i+2*w, i+3*w
	if lo0 < 0 || hi1 >= len(counts) {
		return 0, false
	}
	var s float64
	n := 0
	for j := lo0; j <= lo1; j++ {
		s += counts[j]
		n++
	}
	for j := hi0; j <= hi1; j++ {
		s += counts[j]
		n++
	}
	return s / float64(n), true
}

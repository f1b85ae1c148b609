package movie

import (
	"cmp"
	"math"
	"slices"
)

// Detection is one particle found in one frame: its centre (pixels; x
// right, y down), a box around it, and what was measured of it.
type Detection struct {
	Frame int     `json:"frame"`
	X     float64 `json:"x"`
	Y     float64 `json:"y"`
	W     float64 `json:"w"`
	H     float64 `json:"h"`
	Score float64 `json:"score"`
	Track int     `json:"track"`
	// AreaPx is the projected area in pixels (at AreaLevel of the
	// particle's height above its background), DiameterPx the diameter of
	// the disc of that area.
	AreaPx     float64 `json:"area_px,omitempty"`
	DiameterPx float64 `json:"diameter_px,omitempty"`
	// Intensity is the integrated intensity above the local background
	// (the frame's units: counts for counting detectors).
	Intensity float64 `json:"intensity,omitempty"`
	// SNR is the particle's height over the local noise (smoothed).
	SNR float64 `json:"snr,omitempty"`
	// Elongation is the ratio of the outline's long axis to its short one
	// (1: round).
	Elongation float64 `json:"elongation,omitempty"`
	// long is the variance of the outline's pixels along its long axis,
	// (ax, ay) that axis (classical detector; 0: not known).
	long, ax, ay float64
}

// Detector is the classical particle detector. Scan lines are levelled,
// the frame smoothed (Gaussian, Sigma), the film's slow background removed
// (a grey-scale opening wider than any particle), and the noise and offset
// of what remains measured block by block; particles are then flooded out
// of the residual from the brightest pixels down, kept apart where the
// profile dips between them by more than the dynamics, and kept when their
// height is Significance times the noise around them. So a faint small
// particle next to a bright large one is judged by its own neighbourhood.
// It keeps its buffers between frames; use one per goroutine.
type Detector struct {
	// Sigma is the smoothing in pixels (default 1).
	Sigma float64
	// Significance is how far above its local background, in standard
	// deviations of the local (smoothed) noise, a particle's peak must
	// rise (default 5.5: a 1024² frame holds about a million chances for
	// noise to rise 5 sigmas once).
	Significance float64
	// Dynamics is how far, in noise sigmas, a particle must rise above the
	// saddle to a brighter touching one to count apart (default 2.5).
	Dynamics float64
	// MaxRadius is the largest particle radius in pixels: the background
	// follows the film at larger scales only (default 12).
	MaxRadius int
	// AreaLevel is the fraction of a particle's height at which its area
	// is measured (default 0.3).
	AreaLevel float64
	// MinArea is the smallest particle in pixels at the measuring level,
	// whole or a part of a region cut in two (default 2): narrower than
	// the smoothing, it is a noise spike (the 1-pixel parts of cuts were
	// found on thin rafts under the noise, a track's fragments).
	MinArea int
	// MaxDetections keeps the most significant ones (default 5000).
	MaxDetections int

	scale            Scaler
	sample           []float32
	a, b, tmp, bg    []float32
	half, vh         []float32
	offs, sigs, meds []float32
	kernel           []float32
	label            []int32
	touched, order   []int32
	vals, hfs        []float32
	keys             []uint64
	blocksX          int // noise blocks across
	regions          []region
	ix               []int32
	tx               []float32
	dist             []int16
	blabel, border   []int32
	found            []found
}

func (d *Detector) defaults() {
	if d.Sigma == 0 {
		d.Sigma = 1
	}
	if d.Significance == 0 {
		d.Significance = 5.5
	}
	if d.Dynamics == 0 {
		d.Dynamics = 2.5
	}
	if d.MaxRadius == 0 {
		d.MaxRadius = 12
	}
	if d.AreaLevel == 0 {
		d.AreaLevel = 0.3
	}
	if d.MinArea == 0 {
		d.MinArea = 2
	}
	if d.MaxDetections == 0 {
		d.MaxDetections = 5000
	}
}

// Detect finds the particles of one w×h frame, measuring intensities in
// the frame's units.
func (d *Detector) Detect(frame []float64, w, h, index int) []Detection {
	lo, hi := d.scale.Range(frame)
	return d.DetectFrame(frame, lo, hi, w, h, index)
}

// DetectFrame finds the particles of a frame whose values lo..hi the video
// shows as 0..255 (the same scale, not clipped, so bright particles keep
// their tops); intensities are in the frame's units.
func (d *Detector) DetectFrame(frame []float64, lo, hi float64, w, h, index int) []Detection {
	return d.DetectFrameGray(frame, lo, hi, nil, w, h, index)
}

// DetectFrameGray is DetectFrame that also writes the 8-bit frame the
// video shows into gray (when not nil), in the same pass over the frame.
func (d *Detector) DetectFrameGray(frame []float64, lo, hi float64, gray []uint8, w, h, index int) []Detection {
	a := grow(&d.a, w*h)
	k := 255 / (hi - lo)
	if gray == nil {
		for i, v := range frame[:w*h] {
			a[i] = float32((v - lo) * k)
		}
	} else {
		gray = gray[:w*h]
		for i, v := range frame[:w*h] {
			x := (v - lo) * k
			a[i] = float32(x)
			gray[i] = toGray(x)
		}
	}
	return d.detect(a, w, h, index, 1/k)
}

// DetectGray finds the particles of a frame already scaled to 8 bits.
func (d *Detector) DetectGray(gray []uint8, w, h, index int) []Detection {
	a := grow(&d.a, w*h)
	for i, v := range gray[:w*h] {
		a[i] = float32(v)
	}
	return d.detect(a, w, h, index, 1)
}

func grow(buf *[]float32, n int) []float32 {
	if cap(*buf) < n {
		*buf = make([]float32, n)
	}
	return (*buf)[:n]
}

// lowLevel is where the flooding stops, in noise sigmas above the offset.
const lowLevel = 2.5

// detect runs the detector on a (w×h, scaled 0-255, changed in place);
// unit converts its values back to the frame's.
func (d *Detector) detect(a []float32, w, h, index int, unit float64) []Detection {
	d.defaults()
	n := w * h
	b, tmp, bg := grow(&d.b, n), grow(&d.tmp, n), grow(&d.bg, n)
	levelRows(a, w, h, tmp, grow(&d.meds, h))
	d.blur(a, tmp, b, w, h)
	r := bg // the residual: the smoothed frame less its background
	d.background(b, r, w, h, d.MaxRadius)
	d.blocksX, _ = d.noiseMap(r, a, b, w, h)
	// Candidates: pixels above the low level of their block.
	d.order, d.vals, d.keys = d.order[:0], d.vals[:0], d.keys[:0]
	for y := range h {
		row := r[y*w : (y+1)*w]
		for x0 := 0; x0 < w; x0 += noiseBlock {
			bi := d.blockOf(int32(y*w+x0), w)
			off := d.offs[bi]
			low := off + lowLevel*d.sigs[bi]
			for x := x0; x < min(w, x0+noiseBlock); x++ {
				if v := row[x]; v >= low {
					// Brightest first: the value's bits order positive
					// floats; the pixel index breaks ties.
					d.keys = append(d.keys, uint64(math.Float32bits(v-off))<<32|uint64(y*w+x))
				}
			}
		}
	}
	sortDescending(d.keys)
	for _, k := range d.keys {
		d.order = append(d.order, int32(uint32(k)))
		d.vals = append(d.vals, math.Float32frombits(uint32(k>>32)))
	}
	d.flood(d.order, d.vals, a, b, w, h)
	sig := float32(d.Significance)
	edge := int32(math.Ceil(2 * d.Sigma))
	for i := range d.regions[1:] {
		rg := &d.regions[i+1]
		need := sig
		if x, y := rg.peakAt%int32(w), rg.peakAt/int32(w); x < edge || y < edge || x >= int32(w)-edge || y >= int32(h)-edge {
			// The smoothing repeats the edge pixels, so the noise there is
			// larger than the block's: a peak on the edge must rise more.
			need *= 1.5
		}
		rg.significant = rg.parent == int32(i+1) && rg.peak >= need*rg.sigma
	}
	d.measure(d.order, d.vals, w)
	var out []Detection
	// add reports a particle: its centre, summed residual (the intensity),
	// area, bounds and outline at the measuring level.
	add := func(cx, cy, sv float64, area, x0, y0, x1, y1 int32, snr float64, shape *outline) {
		a := float64(area)
		_, _, long, _, ax, ay := shape.axes()
		out = append(out, Detection{Frame: index, X: cx, Y: cy,
			W: float64(x1-x0) + 1, H: float64(y1-y0) + 1, Score: snr / (snr + float64(sig)), Track: -1,
			AreaPx: a, DiameterPx: 2 * math.Sqrt(a/math.Pi), Intensity: sv * unit, SNR: snr, Elongation: shape.elongation(),
			long: long, ax: ax, ay: ay})
	}
	// The particles of each region, then the regions cut in two whose
	// half is a neighbour's (see ownHalves), then out.
	d.found = d.found[:0]
	for i := range d.regions[1:] {
		rg := &d.regions[i+1]
		if !rg.significant || rg.area < int32(d.MinArea) || rg.sv <= 0 {
			continue
		}
		off := d.offs[d.blockOf(rg.peakAt, w)]
		f := found{id: int32(i + 1), off: off}
		f.parts = d.split(rg, f.id, r, off, w)
		if f.parts == nil {
			f.parts = d.cutTwo(rg, f.id, r, off, w)
			f.cut = f.parts != nil
		}
		d.found = append(d.found, f)
	}
	d.ownHalves(r, w)
	for _, f := range d.found {
		if f.gone {
			continue
		}
		rg := &d.regions[f.id]
		snr := float64(rg.peak / rg.sigma)
		parts := f.parts
		if parts == nil {
			add(rg.sx/rg.sv, rg.sy/rg.sv, rg.sv, rg.area, rg.x0, rg.y0, rg.x1, rg.y1, snr, &rg.shape)
			continue
		}
		// The region's intensity below the measuring level is shared in
		// proportion to what each part holds above it.
		var held float64
		for _, p := range parts {
			held += p.sv
		}
		total := rg.sv
		if f.took != 0 {
			total += d.regions[f.took].sv
		}
		for _, p := range parts {
			if p.sv > 0 && p.area >= int32(d.MinArea) {
				add(p.sx/p.sv, p.sy/p.sv, p.sv*total/held, p.area, p.x0, p.y0, p.x1, p.y1, snr, &p.shape)
			}
		}
	}
	if len(out) > d.MaxDetections {
		slices.SortFunc(out, func(p, q Detection) int { return cmp.Compare(q.SNR, p.SNR) })
		out = out[:d.MaxDetections]
	}
	return out
}

// sortDescending sorts keys from the largest (an LSD radix sort on the
// upper 32 bits, stable, so equal values keep their pixel order).
func sortDescending(keys []uint64) {
	n := len(keys)
	if n < 2 {
		return
	}
	k2 := make([]uint64, n)
	for shift := uint(32); shift < 64; shift += 16 {
		var count [1 << 16]int
		for _, k := range keys {
			count[0xffff-(k>>shift)&0xffff]++
		}
		pos := 0
		for i, c := range count {
			count[i] = pos
			pos += c
		}
		for _, k := range keys {
			b := 0xffff - (k>>shift)&0xffff
			k2[count[b]] = k
			count[b]++
		}
		copy(keys, k2)
	}
}

// blockOf is the noise block of pixel p (see noiseMap).
func (d *Detector) blockOf(p int32, w int) int {
	x, y := int(p)%w, int(p)/w
	return (y/noiseBlock)*d.blocksX + x/noiseBlock
}

// blur applies a separable Gaussian of d.Sigma: src -> tmp (rows) -> dst.
func (d *Detector) blur(src, tmp, dst []float32, w, h int) {
	// Cut at 2 sigma (97.7 % of the weight), the kernel renormalised.
	rad := max(1, int(math.Ceil(2*d.Sigma)))
	if len(d.kernel) != rad+1 {
		d.kernel = make([]float32, rad+1) // the centre, then each side's
		sum := float32(0)
		for i := range d.kernel {
			x := float64(i)
			d.kernel[i] = float32(math.Exp(-x * x / (2 * d.Sigma * d.Sigma)))
			sum += d.kernel[i]
			if i > 0 {
				sum += d.kernel[i]
			}
		}
		for i := range d.kernel {
			d.kernel[i] /= sum
		}
	}
	kern := d.kernel
	k0 := kern[0]
	if rad == 2 && w > 4 {
		k1, k2 := kern[1], kern[2]
		for y := range h {
			row, out := src[y*w:(y+1)*w], tmp[y*w:(y+1)*w]
			edge := func(x int) float32 {
				return k0*row[x] + k1*(row[max(x-1, 0)]+row[min(x+1, w-1)]) + k2*(row[max(x-2, 0)]+row[min(x+2, w-1)])
			}
			out[0], out[1] = edge(0), edge(1)
			for x := 2; x < w-2; x++ {
				out[x] = k0*row[x] + k1*(row[x-1]+row[x+1]) + k2*(row[x-2]+row[x+2])
			}
			out[w-2], out[w-1] = edge(w-2), edge(w-1)
		}
	} else {
		d.blurRows(src, tmp, w, h, rad)
	}
	d.blurColumns(tmp, dst, w, h, rad)
}

// blurRows is blur's row pass for any radius.
func (d *Detector) blurRows(src, tmp []float32, w, h, rad int) {
	kern := d.kernel
	k0 := kern[0]
	for y := range h {
		row, out := src[y*w:(y+1)*w], tmp[y*w:(y+1)*w]
		for x := range w {
			if x >= rad && x < w-rad {
				s := k0 * row[x]
				for i := 1; i <= rad; i++ {
					s += kern[i] * (row[x-i] + row[x+i])
				}
				out[x] = s
				continue
			}
			s := k0 * row[x]
			for i := 1; i <= rad; i++ {
				s += kern[i] * (row[max(x-i, 0)] + row[min(x+i, w-1)])
			}
			out[x] = s
		}
	}
}

// blurColumns is blur's column pass.
func (d *Detector) blurColumns(tmp, dst []float32, w, h, rad int) {
	kern := d.kernel
	k0 := kern[0]
	if rad == 2 {
		// The default (sigma 1): one pass over each row.
		k1, k2 := kern[1], kern[2]
		for y := range h {
			out := dst[y*w : (y+1)*w]
			c := tmp[y*w:][:w]
			u1, d1 := tmp[max(y-1, 0)*w:][:w], tmp[min(y+1, h-1)*w:][:w]
			u2, d2 := tmp[max(y-2, 0)*w:][:w], tmp[min(y+2, h-1)*w:][:w]
			for x := range out {
				out[x] = k0*c[x] + k1*(u1[x]+d1[x]) + k2*(u2[x]+d2[x])
			}
		}
		return
	}
	for y := range h {
		out := dst[y*w : (y+1)*w]
		c := tmp[y*w : (y+1)*w]
		for x := range out {
			out[x] = k0 * c[x]
		}
		for i := 1; i <= rad; i++ {
			up := tmp[max(y-i, 0)*w:][:w]
			dn := tmp[min(y+i, h-1)*w:][:w]
			ki := kern[i]
			for x := range out {
				out[x] += ki * (up[x] + dn[x])
			}
		}
	}
}

package movie

import (
	"math"
	"slices"
)

// Detection is one particle found in one frame: a box around its
// intensity-weighted centre (pixels; x right, y down).
type Detection struct {
	Frame int     `json:"frame"`
	X     float64 `json:"x"`
	Y     float64 `json:"y"`
	W     float64 `json:"w"`
	H     float64 `json:"h"`
	Score float64 `json:"score"`
	Track int     `json:"track"`
}

// Detector is the classical particle detector: Gaussian smoothing, an Otsu
// threshold, local maxima at least MinDistance apart, and a box from the
// intensity moments around each maximum. It keeps its buffers between
// frames; use one per goroutine.
type Detector struct {
	// Sigma is the smoothing in pixels (default 1.2).
	Sigma float64
	// MinDistance is the smallest distance between two particles' centres
	// in pixels (default 4).
	MinDistance float64
	// Window is the half-size of the moment window in pixels (default 10).
	Window int
	// MinScore drops maxima barely above the threshold (default 0.15).
	MinScore float64
	// NoiseSigmas is how far above the background, in standard deviations
	// of the smoothed noise, a particle must rise (default 5). It guards
	// the Otsu threshold when particles cover little of the frame.
	NoiseSigmas float64
	// MaxDetections keeps the best-scoring ones (default 1000).
	MaxDetections int

	scale     Scaler
	gray      []uint8
	sample    []float32
	a, b, tmp []float32
	kernel    []float32
}

func (d *Detector) defaults() {
	if d.Sigma == 0 {
		d.Sigma = 1.2
	}
	if d.MinDistance == 0 {
		d.MinDistance = 4
	}
	if d.Window == 0 {
		d.Window = 10
	}
	if d.MinScore == 0 {
		d.MinScore = 0.15
	}
	if d.NoiseSigmas == 0 {
		d.NoiseSigmas = 5
	}
	if d.MaxDetections == 0 {
		d.MaxDetections = 1000
	}
}

// Detect finds the particles of one w×h frame.
func (d *Detector) Detect(frame []float64, w, h, index int) []Detection {
	n := w * h
	if cap(d.gray) < n {
		d.gray = make([]uint8, n)
	}
	d.scale.Scale(frame, d.gray[:n])
	return d.DetectGray(d.gray[:n], w, h, index)
}

// DetectGray finds the particles of a frame already scaled to 8 bits (as
// for the video: scaling once serves both).
func (d *Detector) DetectGray(gray []uint8, w, h, index int) []Detection {
	d.defaults()
	n := w * h
	if cap(d.a) < n {
		d.a, d.b, d.tmp = make([]float32, n), make([]float32, n), make([]float32, n)
	}
	a, b, tmp := d.a[:n], d.b[:n], d.tmp[:n]
	var lut [256]float32
	for i := range lut {
		lut[i] = float32(i) / 255
	}
	for i, v := range gray[:n] {
		a[i] = lut[v]
	}
	d.blur(a, tmp, b, w, h)
	thr := max(otsu(b), d.noiseFloor(b))
	// Candidates: strict 3×3 maxima above the threshold.
	type cand struct {
		x, y int
		v    float32
	}
	var cands []cand
	for y := 1; y < h-1; y++ {
		row := b[y*w:]
		up, down := b[(y-1)*w:], b[(y+1)*w:]
		for x := 1; x < w-1; x++ {
			v := row[x]
			if v <= thr || v < row[x-1] || v <= row[x+1] || v < up[x-1] || v < up[x] || v < up[x+1] || v <= down[x-1] || v <= down[x] || v <= down[x+1] {
				continue
			}
			cands = append(cands, cand{x, y, v})
		}
	}
	slices.SortFunc(cands, func(p, q cand) int {
		if p.v > q.v {
			return -1
		}
		if p.v < q.v {
			return 1
		}
		return 0
	})
	md2 := d.MinDistance * d.MinDistance
	var kept []cand
	for _, c := range cands {
		ok := true
		for _, o := range kept {
			dx, dy := float64(c.x-o.x), float64(c.y-o.y)
			if dx*dx+dy*dy < md2 {
				ok = false
				break
			}
		}
		if ok {
			kept = append(kept, c)
		}
	}
	if len(kept) > d.MaxDetections {
		kept = kept[:d.MaxDetections] // sorted by height: the strongest
	}
	var out []Detection
	span := float32(1) - thr
	for _, c := range kept {
		score := float64((c.v - thr) / span)
		if score < d.MinScore {
			continue
		}
		// The size from the moments of the smoothed signal above the
		// threshold, in a window that stops at half the distance to the
		// nearest neighbour (touching particles do not inflate each other).
		r := d.Window
		for _, o := range kept {
			if o == c {
				continue
			}
			dist := math.Hypot(float64(c.x-o.x), float64(c.y-o.y))
			r = min(r, max(2, int(dist/2)))
		}
		var sw, sx, sy, sxx, syy float64
		for y := max(0, c.y-r); y <= min(h-1, c.y+r); y++ {
			for x := max(0, c.x-r); x <= min(w-1, c.x+r); x++ {
				v := float64(b[y*w+x] - thr)
				if v <= 0 {
					continue
				}
				fx, fy := float64(x), float64(y)
				sw += v
				sx += v * fx
				sy += v * fy
				sxx += v * fx * fx
				syy += v * fy * fy
			}
		}
		if sw == 0 {
			continue
		}
		mx, my := sx/sw, sy/sw
		vx := math.Max(sxx/sw-mx*mx, 0.25)
		vy := math.Max(syy/sw-my*my, 0.25)
		// The centre from a parabola through the maximum and its neighbours:
		// sub-pixel, and not pulled towards a touching neighbour.
		cx := float64(c.x) + parabola(b[c.y*w+c.x-1], c.v, b[c.y*w+c.x+1])
		cy := float64(c.y) + parabola(b[(c.y-1)*w+c.x], c.v, b[(c.y+1)*w+c.x])
		// A Gaussian cut at the threshold has a smaller second moment than
		// its sigma; the box spans about ±2 sigma of the particle.
		bw, bh := 4*math.Sqrt(vx)*1.35, 4*math.Sqrt(vy)*1.35
		out = append(out, Detection{Frame: index, X: cx, Y: cy, W: bw, H: bh, Score: math.Min(score, 1), Track: -1})
	}
	return out
}

// noiseFloor is the background level plus NoiseSigmas robust standard
// deviations (median and median absolute deviation of a sample).
func (d *Detector) noiseFloor(b []float32) float32 {
	step := max(1, len(b)/16384)
	sample := d.sample[:0]
	for i := 0; i < len(b); i += step {
		sample = append(sample, b[i])
	}
	d.sample = sample
	if len(sample) == 0 {
		return 0
	}
	slices.Sort(sample)
	med := sample[len(sample)/2]
	for i, v := range sample {
		if v < med {
			sample[i] = med - v
		} else {
			sample[i] = v - med
		}
	}
	slices.Sort(sample)
	mad := sample[len(sample)/2]
	return med + float32(d.NoiseSigmas)*1.4826*mad
}

// blur applies a separable Gaussian of d.Sigma: src -> tmp (rows) -> dst.
func (d *Detector) blur(src, tmp, dst []float32, w, h int) {
	rad := int(math.Ceil(2.5 * d.Sigma))
	if len(d.kernel) != 2*rad+1 {
		d.kernel = make([]float32, 2*rad+1)
		var sum float32
		for i := range d.kernel {
			x := float64(i - rad)
			d.kernel[i] = float32(math.Exp(-x * x / (2 * d.Sigma * d.Sigma)))
			sum += d.kernel[i]
		}
		for i := range d.kernel {
			d.kernel[i] /= sum
		}
	}
	kern := d.kernel
	for y := range h {
		row, out := src[y*w:(y+1)*w], tmp[y*w:(y+1)*w]
		for x := range w {
			var s float32
			if x >= rad && x < w-rad {
				seg := row[x-rad : x+rad+1 : x+rad+1]
				seg = seg[:len(kern)]
				for i, kv := range kern {
					s += kv * seg[i]
				}
			} else {
				for i, kv := range kern {
					xx := min(max(x+i-rad, 0), w-1)
					s += kv * row[xx]
				}
			}
			out[x] = s
		}
	}
	for y := range h {
		out := dst[y*w : (y+1)*w]
		clear(out)
		for i, kv := range kern {
			yy := min(max(y+i-rad, 0), h-1)
			in := tmp[yy*w : (yy+1)*w]
			for x := range out {
				out[x] += kv * in[x]
			}
		}
	}
}

// otsu returns the threshold in [0,1] that best separates two classes of
// values (256-bin histogram).
func otsu(v []float32) float32 {
	var hist [256]float64
	for _, x := range v {
		hist[min(int(x*255), 255)]++
	}
	total := float64(len(v))
	var sum float64
	for i, c := range hist {
		sum += float64(i) * c
	}
	var sumB, wB, best float64
	thr := 0
	for i, c := range hist {
		wB += c
		if wB == 0 {
			continue
		}
		wF := total - wB
		if wF == 0 {
			break
		}
		sumB += float64(i) * c
		mB, mF := sumB/wB, (sum-sumB)/wF
		if between := wB * wF * (mB - mF) * (mB - mF); between > best {
			best, thr = between, i
		}
	}
	return (float32(thr) + 0.5) / 255
}

// parabola returns the offset in [-0.5, 0.5] of the vertex of the parabola
// through (-1, l), (0, c), (1, r).
func parabola(l, c, r float32) float64 {
	den := float64(l - 2*c + r)
	if den >= 0 {
		return 0
	}
	return math.Max(-0.5, math.Min(0.5, float64(l-r)/(2*den)))
}

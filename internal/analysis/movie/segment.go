package movie

import (
	"cmp"
	"math"
	"slices"
)

// Particles are cut out of the residual (the smoothed frame less its
// background) by flooding it from the top: pixels above a low level are
// taken brightest first; a pixel joins the particle of its neighbours, and
// where two particles meet, the fainter one is kept as a particle of its
// own only if it rises clearly (the dynamics) above the saddle between
// them. Touching particles, whose profiles dip between them, stay apart;
// the noise on one particle's top does not split it.

// region is a particle being flooded.
type region struct {
	parent int32
	peak   float32 // the residual at its brightest pixel, less the offset
	peakAt int32
	sigma  float32 // the noise where it peaks
	// Sums over its pixels of the residual above the offset (v), v·x, v·y.
	sv, sx, sy float64
	pixels     int32
	// hf2 sums the squares of its pixels' high frequencies (the frame less
	// its smoothing), hfBg is their noise around it: on a bright particle
	// shot noise grows, and so must the dip that splits it.
	hf2  float64
	hfBg float32
	// Bounds, area and outline at the measuring level (filled after the
	// flood).
	shape          outline
	area           int32
	x0, y0, x1, y1 int32
	significant    bool
}

func (d *Detector) find(i int32) int32 {
	rs := d.regions
	for rs[i].parent != i {
		rs[i].parent = rs[rs[i].parent].parent
		i = rs[i].parent
	}
	return i
}

// union folds region b into a.
func (d *Detector) union(a, b int32) {
	ra, rb := &d.regions[a], &d.regions[b]
	rb.parent = a
	ra.sv += rb.sv
	ra.sx += rb.sx
	ra.sy += rb.sy
	ra.pixels += rb.pixels
	ra.hf2 += rb.hf2
}

// flood segments the candidates (pixel indexes whose residual, less the
// offset, is val[i] >= their low level), given brightest first; a and b
// are the levelled and the smoothed frame.
func (d *Detector) flood(order []int32, val, a, b []float32, w, h int) {
	n := w * h
	if cap(d.label) < n {
		d.label = make([]int32, n)
	}
	label := d.label[:n]
	for _, p := range d.touched {
		label[p] = 0
	}
	d.touched = append(d.touched[:0], order...)
	d.regions = append(d.regions[:0], region{}) // 0: no region
	var roots [8]int32
	for k, p := range order {
		v := val[k]
		x, y := int(p)%w, int(p)/w
		nr := 0
		for dy := -1; dy <= 1; dy++ {
			yy := y + dy
			if yy < 0 || yy >= h {
				continue
			}
			for dx := -1; dx <= 1; dx++ {
				xx := x + dx
				if (dx == 0 && dy == 0) || xx < 0 || xx >= w {
					continue
				}
				l := label[yy*w+xx]
				if l == 0 {
					continue
				}
				r := d.find(l)
				dup := false
				for _, o := range roots[:nr] {
					dup = dup || o == r
				}
				if !dup {
					roots[nr] = r
					nr++
				}
			}
		}
		var into int32
		if nr == 0 {
			into = int32(len(d.regions))
			bi := d.blockOf(p, w)
			d.regions = append(d.regions, region{parent: into, peak: v, peakAt: p, sigma: d.sigs[bi], hfBg: d.hfs[bi]})
		} else {
			// The brightest neighbour takes the pixel; the others merge
			// into it unless they rise clearly above this saddle.
			into = roots[0]
			for _, r := range roots[1:nr] {
				if d.regions[r].peak > d.regions[into].peak {
					into = r
				}
			}
			for _, r := range roots[:nr] {
				if r == into {
					continue
				}
				rr := &d.regions[r]
				if rr.peak-v < d.dynamics(rr) {
					d.union(into, r)
				}
			}
		}
		label[p] = into
		rg := &d.regions[into]
		fv := float64(v)
		rg.sv += fv
		rg.sx += fv * float64(x)
		rg.sy += fv * float64(y)
		rg.pixels++
		hf := float64(a[p] - b[p])
		rg.hf2 += hf * hf
	}
}

// dynamics is how far a particle must rise above the saddle to a brighter
// neighbour to stay a particle of its own: Dynamics noise sigmas, the
// noise as it is on the particle's top where that is larger than around
// it (shot noise grows with the signal).
func (d *Detector) dynamics(r *region) float32 {
	rho := float32(math.Sqrt(r.hf2/float64(max(r.pixels, 1)))) / r.hfBg
	return float32(d.Dynamics) * r.sigma * max(1, rho)
}

// measure fills each significant region's area and bounds at the
// measuring level (AreaLevel of its height) from the candidates.
func (d *Detector) measure(order []int32, val []float32, w int) {
	for i := range d.regions[1:] {
		r := &d.regions[i+1]
		r.x0, r.y0, r.x1, r.y1 = math.MaxInt32, math.MaxInt32, -1, -1
		r.shape = outline{}
	}
	level := float32(d.AreaLevel)
	for k, p := range order {
		r := &d.regions[d.find(d.label[p])]
		if !r.significant || val[k] < level*r.peak {
			continue
		}
		x, y := p%int32(w), p/int32(w)
		r.area++
		r.shape.add(float64(x), float64(y))
		r.x0, r.y0 = min(r.x0, x), min(r.y0, y)
		r.x1, r.y1 = max(r.x1, x), max(r.y1, y)
	}
}

// A particle lying on another (overlapping in projection) shows no dip in
// the intensity between them, but the outline has a neck. A region large
// enough to be two is cut at its necks: the distance transform of its
// outline (pixels at the measuring level), flooded from its maxima; a
// maximum that rises neckDepth above the neck to a larger one, and lies
// at least minCore inside the outline, is a particle of its own.
const (
	splitArea = 20 // px: smaller regions are one particle
	neckDepth = 3  // chamfer units (3 a pixel)
	minCore   = 5  // chamfer units
	chamfer1  = 3  // the distance to a side neighbour
	chamfer2  = 4  // and to a diagonal one
)

// part is one particle cut out of a region.
type part struct {
	sv, sx, sy float64
	shape      outline
	area       int32
	x0, y0     int32
	x1, y1     int32
}

func newParts(n int) []part {
	parts := make([]part, n)
	for i := range parts {
		parts[i].x0, parts[i].y0, parts[i].x1, parts[i].y1 = math.MaxInt32, math.MaxInt32, -1, -1
	}
	return parts
}

// add takes the pixel (x, y) of residual v into the part.
func (pt *part) add(x, y int32, v float64) {
	pt.sv += v
	pt.sx += v * float64(x)
	pt.sy += v * float64(y)
	pt.area++
	pt.shape.add(float64(x), float64(y))
	pt.x0, pt.y0 = min(pt.x0, x), min(pt.y0, y)
	pt.x1, pt.y1 = max(pt.x1, x), max(pt.y1, y)
}

// inOutline reports whether pixel p belongs to region id (a root) at the
// measuring level, level above the offset off of the residual r.
func (d *Detector) inOutline(p, id int32, r []float32, off, level float32) bool {
	l := d.label[p]
	return l != 0 && d.find(l) == id && r[p]-off >= level
}

// split returns the particles the region rg (of root id) is made of, or
// nil when it is one; r is the residual, off its offset at the region.
func (d *Detector) split(rg *region, id int32, r []float32, off float32, w int) []part {
	if rg.area < splitArea {
		return nil
	}
	bw, bh := int(rg.x1-rg.x0)+3, int(rg.y1-rg.y0)+3 // a pixel of margin
	n := bw * bh
	if cap(d.dist) < n {
		d.dist, d.blabel = make([]int16, n), make([]int32, n)
	}
	dist, bl := d.dist[:n], d.blabel[:n]
	level := float32(d.AreaLevel) * rg.peak
	inside := func(bx, by int) bool {
		x, y := int(rg.x0)+bx-1, int(rg.y0)+by-1
		if bx == 0 || by == 0 || bx == bw-1 || by == bh-1 {
			return false
		}
		return d.inOutline(int32(y*w+x), id, r, off, level)
	}
	const far = 1 << 14
	for by := range bh {
		for bx := range bw {
			if inside(bx, by) {
				dist[by*bw+bx] = far
			} else {
				dist[by*bw+bx] = 0
			}
		}
	}
	// Two-pass chamfer distance to the outside.
	for by := 1; by < bh-1; by++ {
		for bx := 1; bx < bw-1; bx++ {
			i := by*bw + bx
			if dist[i] == 0 {
				continue
			}
			dist[i] = min(dist[i], dist[i-1]+chamfer1, dist[i-bw]+chamfer1, dist[i-bw-1]+chamfer2, dist[i-bw+1]+chamfer2)
		}
	}
	for by := bh - 2; by >= 1; by-- {
		for bx := bw - 2; bx >= 1; bx-- {
			i := by*bw + bx
			if dist[i] == 0 {
				continue
			}
			dist[i] = min(dist[i], dist[i+1]+chamfer1, dist[i+bw]+chamfer1, dist[i+bw+1]+chamfer2, dist[i+bw-1]+chamfer2)
		}
	}
	// Flood the distance from its maxima (deepest first).
	d.border = d.border[:0]
	for i, v := range dist {
		bl[i] = 0
		if v > 0 {
			d.border = append(d.border, int32(v)<<16|int32(i))
		}
	}
	slices.SortFunc(d.border, func(a, b int32) int { return cmp.Compare(b, a) })
	type basin struct {
		parent int32
		peak   int16
	}
	basins := []basin{{}}
	var findB func(i int32) int32
	findB = func(i int32) int32 {
		for basins[i].parent != i {
			basins[i].parent = basins[basins[i].parent].parent
			i = basins[i].parent
		}
		return i
	}
	for _, e := range d.border {
		i := int(e & 0xffff)
		v := int16(e >> 16)
		var roots [8]int32
		nr := 0
		for _, o := range [8]int{-bw - 1, -bw, -bw + 1, -1, 1, bw - 1, bw, bw + 1} {
			if l := bl[i+o]; l != 0 {
				rt := findB(l)
				if !slices.Contains(roots[:nr], rt) {
					roots[nr] = rt
					nr++
				}
			}
		}
		if nr == 0 {
			bl[i] = int32(len(basins))
			basins = append(basins, basin{parent: int32(len(basins)), peak: v})
			continue
		}
		into := roots[0]
		for _, rt := range roots[1:nr] {
			if basins[rt].peak > basins[into].peak {
				into = rt
			}
		}
		for _, rt := range roots[:nr] {
			if rt != into && (basins[rt].peak-v < neckDepth || basins[rt].peak < minCore) {
				basins[rt].parent = into
			}
		}
		bl[i] = into
	}
	var ids []int32
	for i := range basins[1:] {
		if basins[i+1].parent == int32(i+1) {
			ids = append(ids, int32(i+1))
		}
	}
	if len(ids) < 2 {
		return nil
	}
	parts := newParts(len(ids))
	for by := 1; by < bh-1; by++ {
		for bx := 1; bx < bw-1; bx++ {
			l := bl[by*bw+bx]
			if l == 0 {
				continue
			}
			x, y := rg.x0+int32(bx)-1, rg.y0+int32(by)-1
			parts[slices.Index(ids, findB(l))].add(x, y, float64(r[y*int32(w)+x]-off))
		}
	}
	return parts
}

// outline accumulates the pixels of a particle's outline (at the measuring
// level); their moments give its elongation.
type outline struct{ n, sx, sy, sxx, syy, sxy float64 }

func (o *outline) add(x, y float64) {
	o.n++
	o.sx += x
	o.sy += y
	o.sxx += x * x
	o.syy += y * y
	o.sxy += x * y
}

// axes are the outline's centre, the variances along its long and short
// axes, and the direction (ex, ey) of the long one.
func (o *outline) axes() (mx, my, long, short, ex, ey float64) {
	mx, my = o.sx/o.n, o.sy/o.n
	a, c, b := o.sxx/o.n-mx*mx, o.syy/o.n-my*my, o.sxy/o.n-mx*my
	h := math.Sqrt((a-c)*(a-c)/4 + b*b)
	long, short = (a+c)/2+h, (a+c)/2-h
	ex, ey = b, long-a
	if math.Abs(ex)+math.Abs(ey) < 1e-9 {
		return mx, my, long, short, 1, 0
	}
	norm := math.Hypot(ex, ey)
	return mx, my, long, short, ex / norm, ey / norm
}

// elongation is the ratio of the outline's long axis to its short one
// (1: round; two touching discs about 2).
func (o *outline) elongation() float64 {
	if o.n < 2 {
		return 1
	}
	_, _, long, short, _, _ := o.axes()
	// A pixel's own extent (1/12 px²) keeps a line of pixels finite.
	return math.Sqrt((long + 1.0/12) / (short + 1.0/12))
}

// Two discs that overlap by more than a pixel leave no neck in their
// outline, only an outline too long for one round particle. A region
// whose outline is elongated is cut in two by 2-means on its pixels; the
// cut stands when both halves are round (a rod's halves are not) and each
// is large enough to be a particle.
const (
	elongatedTwo = 1.45 // an outline this elongated may be two discs
	roundPart    = 1.4  // and its halves must be this round
)

// cutTwo returns the two discs of the region rg (of root id), or nil.
func (d *Detector) cutTwo(rg *region, id int32, r []float32, off float32, w int) []part {
	if rg.area < 2*splitArea || rg.shape.elongation() < elongatedTwo {
		return nil
	}
	pts := d.pixelsOf(rg, id, r, off, w, nil)
	// Start from the two ends of the long axis.
	mx, my, long, _, ex, ey := rg.shape.axes()
	half := math.Sqrt(long)
	return twoMeans(pts, [2]float64{mx - half*ex, mx + half*ex}, [2]float64{my - half*ey, my + half*ey})
}

// pixel is one pixel of a region and its residual above the offset.
type pixel struct {
	x, y int32
	v    float64
}

// pixelsOf appends to pts the pixels of region rg (of root id) at the
// measuring level.
func (d *Detector) pixelsOf(rg *region, id int32, r []float32, off float32, w int, pts []pixel) []pixel {
	level := float32(d.AreaLevel) * rg.peak
	for y := rg.y0; y <= rg.y1; y++ {
		for x := rg.x0; x <= rg.x1; x++ {
			if p := y*int32(w) + x; d.inOutline(p, id, r, off, level) {
				pts = append(pts, pixel{x, y, float64(r[p] - off)})
			}
		}
	}
	return pts
}

// twoMeans parts pts in two about the centres (cx[k], cy[k]) by 2-means,
// or returns nil where a part is empty, too small or not round.
func twoMeans(pts []pixel, cx, cy [2]float64) []part {
	side := make([]int, len(pts))
	for range 8 {
		var sx, sy, n [2]float64
		for i, p := range pts {
			x, y := float64(p.x), float64(p.y)
			k := 0
			if math.Hypot(x-cx[1], y-cy[1]) < math.Hypot(x-cx[0], y-cy[0]) {
				k = 1
			}
			side[i] = k
			sx[k] += x
			sy[k] += y
			n[k]++
		}
		if n[0] == 0 || n[1] == 0 {
			return nil
		}
		for k := range 2 {
			cx[k], cy[k] = sx[k]/n[k], sy[k]/n[k]
		}
	}
	parts := newParts(2)
	for i, p := range pts {
		parts[side[i]].add(p.x, p.y, p.v)
	}
	for _, pt := range parts {
		if pt.area < splitArea/2 || pt.shape.elongation() > roundPart {
			return nil
		}
	}
	return parts
}

// found is a significant region and the particles it was cut into (nil:
// one).
type found struct {
	id    int32
	off   float32
	parts []part
	cut   bool  // by cutTwo
	gone  bool  // taken into a neighbour's cut
	took  int32 // the neighbour it took (0: none)
}

// ownHalves mends a flood that gave part of one particle to its
// neighbour's region. Where a flat-topped particle (a faceted one) touches
// a brighter one, the flood can reach into its plateau from the brighter
// side: the brighter region, elongated, is cut in two, and one half lies
// on the dimmer particle's own region (seen: a particle found twice, one
// detection on the neck, which took its track). Such a half and the
// region it lies on are one particle: the two regions together are cut in
// two again, from the centres of the region and of the other half.
func (d *Detector) ownHalves(r []float32, w int) {
	radius := func(area int32) float64 { return math.Sqrt(float64(area) / math.Pi) }
	for i := range d.found {
		f := &d.found[i]
		if !f.cut || f.gone {
			continue
		}
		for j := range d.found {
			g := &d.found[j]
			if j == i || g.gone || g.parts != nil {
				continue
			}
			gr := &d.regions[g.id]
			gx, gy := gr.sx/gr.sv, gr.sy/gr.sv
			for k, h := range f.parts {
				hx, hy := h.sx/h.sv, h.sy/h.sv
				if math.Hypot(hx-gx, hy-gy) >= 0.8*(radius(h.area)+radius(gr.area)) {
					continue
				}
				other := f.parts[1-k]
				pts := d.pixelsOf(&d.regions[f.id], f.id, r, f.off, w, nil)
				pts = d.pixelsOf(gr, g.id, r, g.off, w, pts)
				two := twoMeans(pts, [2]float64{gx, other.sx / other.sv}, [2]float64{gy, other.sy / other.sv})
				if two == nil {
					continue
				}
				f.parts, f.took, g.gone = two, g.id, true
				break
			}
			if g.gone {
				break
			}
		}
	}
}

package movie

import "math"

// The detector's view of the frame around each particle: scan lines
// levelled, the film's slow background removed by a grey-scale opening
// (a rolling ball with a square foot, larger than any particle), and the
// noise and offset of what remains measured block by block, so a particle
// is judged against its own neighbourhood and not against the brightest
// thing in the frame.

// levelRows removes scan-line offsets: each row is shifted so its lower
// quartile is the median of all rows' lower quartiles. A row's offset
// moves all its values alike; its lower quartile is its background even
// where particles cover half of it.
func levelRows(a []float32, w, h int, tmp []float32, meds []float32) {
	// Every eighth pixel of a row tells its lower quartile well enough.
	step := 8
	if w < 512 {
		step = max(1, w/64)
	}
	for y := range h {
		row := a[y*w : (y+1)*w]
		s := tmp[:0]
		for x := 0; x < w; x += step {
			s = append(s, row[x])
		}
		meds[y] = selectK(s, len(s)/4)
	}
	all := append(tmp[:0], meds[:h]...)
	mid := selectK(all, h/2)
	for y := range h {
		off := meds[y] - mid
		if off == 0 {
			continue
		}
		row := a[y*w : (y+1)*w]
		for x := range row {
			row[x] -= off
		}
	}
}

// selectK returns the k-th smallest value of v (reordering v), NaNs
// taken as larger than any number: Hoare's quickselect, linear on
// average.
func selectK[T float32 | float64](v []T, k int) T {
	if len(v) == 0 {
		return 0
	}
	less := func(a, b T) bool { return a < b || b != b && a == a }
	lo, hi := 0, len(v)-1
	for lo < hi {
		p := v[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for less(v[i], p) {
				i++
			}
			for less(p, v[j]) {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return v[k]
		}
	}
	return v[k]
}

// background removes the slowly varying film under the particles from
// the smoothed frame b, into r: the background is b averaged over 4×4
// pixels, opened (eroded then dilated) with a square of side about
// 2·radius pixels of the full frame, smoothed by a box of the same size
// and scaled back up bilinearly. (The film's background varies slowly: a
// sixteenth of the pixels describe it.)
func (d *Detector) background(b, r []float32, w, h, radius int) {
	const f = 4
	qw, qh := (w+f-1)/f, (h+f-1)/f
	n := qw * qh
	if cap(d.half) < 3*n {
		d.half = make([]float32, 3*n)
	}
	q, tmp, out := d.half[:n], d.half[n:2*n], d.half[2*n:3*n]
	clear(q)
	for y := range h {
		row := b[y*w : (y+1)*w]
		qrow := q[(y/f)*qw : (y/f+1)*qw]
		x := 0
		for ; x+f <= w; x += f {
			qrow[x/f] += row[x] + row[x+1] + row[x+2] + row[x+3]
		}
		for ; x < w; x++ {
			qrow[x/f] += row[x]
		}
	}
	for qy := range qh {
		rows := min(f, h-qy*f)
		for qx := range qw {
			cols := min(f, w-qx*f)
			q[qy*qw+qx] /= float32(rows * cols)
		}
	}
	rq := max(1, (radius+f/2)/f)
	d.minMax(q, tmp, out, qw, qh, rq, true)
	d.minMax(out, tmp, q, qw, qh, rq, false)
	d.boxBlur(q, tmp, out, qw, qh, rq)
	// Bilinear back to full size: pixel x sits at (x+0.5)/f-0.5 in the
	// coarse grid.
	if cap(d.ix) < w {
		d.ix, d.tx = make([]int32, w), make([]float32, w)
	}
	ix, tx := d.ix[:w], d.tx[:w]
	for x := range w {
		fx := max(0, (float32(x)+0.5)/f-0.5)
		ix[x] = int32(min(int(fx), qw-1))
		tx[x] = fx - float32(ix[x])
	}
	crow := tmp[:qw+1] // a coarse row between two, then one past its end
	for y := range h {
		fy := max(0, (float32(y)+0.5)/f-0.5)
		iy := min(int(fy), qh-1)
		jy := min(iy+1, qh-1)
		ty := fy - float32(iy)
		top, bot := out[iy*qw:(iy+1)*qw], out[jy*qw:(jy+1)*qw]
		for i := range qw {
			crow[i] = top[i] + (bot[i]-top[i])*ty
		}
		crow[qw] = crow[qw-1]
		dst, src := r[y*w:(y+1)*w], b[y*w:(y+1)*w]
		for x := range dst {
			i := ix[x]
			dst[x] = src[x] - (crow[i] + (crow[i+1]-crow[i])*tx[x])
		}
	}
}

// minMax applies a running min (erode) or max over a (2r+1)² square: rows
// into tmp, then columns into dst (van Herk / Gil-Werman: three
// comparisons a pixel whatever r).
func (d *Detector) minMax(src, tmp, dst []float32, w, h, r int, isMin bool) {
	size := 2*r + 1
	line := max(w, h) + 2*size
	if cap(d.vh) < 4*line {
		d.vh = make([]float32, 4*line)
	}
	in, g, hb, res := d.vh[:line], d.vh[line:2*line], d.vh[2*line:3*line], d.vh[3*line:4*line]
	// The running extreme of a and b: the smaller when isMin, else the
	// larger (an inlined comparison; a closure per element is slow).
	run := func(n int) {
		m := n + 2*r
		for s := 0; s < m; s += size {
			e := min(s+size, m)
			v := in[s]
			g[s] = v
			for i := s + 1; i < e; i++ {
				if x := in[i]; (x < v) == isMin {
					v = x
				}
				g[i] = v
			}
			v = in[e-1]
			hb[e-1] = v
			for i := e - 2; i >= s; i-- {
				if x := in[i]; (x < v) == isMin {
					v = x
				}
				hb[i] = v
			}
		}
		for i := range n {
			a, b := hb[i], g[min(i+size-1, m-1)]
			if (b < a) == isMin {
				a = b
			}
			res[i] = a
		}
	}
	pad := func(n int) {
		// Edge values repeated r times on both sides.
		for i := range r {
			in[i], in[n+r+i] = in[r], in[n+r-1]
		}
	}
	for y := range h {
		copy(in[r:], src[y*w:(y+1)*w])
		pad(w)
		run(w)
		copy(tmp[y*w:(y+1)*w], res[:w])
	}
	for x := range w {
		for y := range h {
			in[r+y] = tmp[y*w+x]
		}
		pad(h)
		run(h)
		for y := range h {
			dst[y*w+x] = res[y]
		}
	}
}

// boxBlur averages over a (2r+1)² square (edges clamped): src -> tmp
// (rows) -> dst (columns), with running sums.
func (d *Detector) boxBlur(src, tmp, dst []float32, w, h, r int) {
	k := float32(1) / float32(2*r+1)
	for y := range h {
		row, out := src[y*w:(y+1)*w], tmp[y*w:(y+1)*w]
		var s float32
		for i := -r; i <= r; i++ {
			s += row[min(max(i, 0), w-1)]
		}
		for x := range w {
			out[x] = s * k
			s += row[min(x+r+1, w-1)] - row[max(x-r, 0)]
		}
	}
	for x := range w {
		var s float32
		for i := -r; i <= r; i++ {
			s += tmp[min(max(i, 0), h-1)*w+x]
		}
		for y := range h {
			dst[y*w+x] = s * k
			s += tmp[min(y+r+1, h-1)*w+x] - tmp[max(y-r, 0)*w+x]
		}
	}
}

// noiseBlock is the side of the blocks whose residual's offset and noise
// are measured.
const noiseBlock = 64

// noiseMap measures, block by block, the median (offset) and the robust
// standard deviation (1.4826 × the median absolute deviation) of the
// residual r, from every fourth pixel of every fourth row; each block then
// takes the medians of its own and its neighbours' (3×3), so a block
// crowded with particles does not raise its noise.
func (d *Detector) noiseMap(r, a, b []float32, w, h int) (bw, bh int) {
	bw, bh = (w+noiseBlock-1)/noiseBlock, (h+noiseBlock-1)/noiseBlock
	nb := bw * bh
	if cap(d.offs) < 2*nb {
		d.offs, d.sigs, d.hfs = make([]float32, 2*nb), make([]float32, 2*nb), make([]float32, 2*nb)
	}
	offs, sigs, hfs := d.offs[nb:2*nb], d.sigs[nb:2*nb], d.hfs[nb:2*nb]
	for by := range bh {
		for bx := range bw {
			s := d.sample[:0]
			for y := by * noiseBlock; y < min(h, (by+1)*noiseBlock); y += 4 {
				row := r[y*w:]
				for x := bx * noiseBlock; x < min(w, (bx+1)*noiseBlock); x += 4 {
					s = append(s, row[x])
				}
			}
			d.sample = s
			med := selectK(s, len(s)/2)
			for i, v := range s {
				s[i] = float32(math.Abs(float64(v - med)))
			}
			mad := selectK(s, len(s)/2)
			offs[by*bw+bx], sigs[by*bw+bx] = med, 1.4826*mad
			// The frame's own high frequencies (levelled less smoothed),
			// the noise a particle's top is compared with.
			s = s[:0]
			for y := by*noiseBlock + 2; y < min(h, (by+1)*noiseBlock); y += 4 {
				for x := bx*noiseBlock + 2; x < min(w, (bx+1)*noiseBlock); x += 4 {
					s = append(s, float32(math.Abs(float64(a[y*w+x]-b[y*w+x]))))
				}
			}
			if len(s) > 0 {
				hfs[by*bw+bx] = 1.4826 * selectK(s, len(s)/2)
			} else {
				hfs[by*bw+bx] = 1.4826 * mad // a sliver of a block
			}
		}
	}
	var nine [9]float32
	for by := range bh {
		for bx := range bw {
			for k, src := range [][]float32{offs, sigs, hfs} {
				n := 0
				for y := max(0, by-1); y <= min(bh-1, by+1); y++ {
					for x := max(0, bx-1); x <= min(bw-1, bx+1); x++ {
						nine[n] = src[y*bw+x]
						n++
					}
				}
				v := selectK(nine[:n], n/2)
				switch k {
				case 0:
					d.offs[by*bw+bx] = v
				case 1:
					d.sigs[by*bw+bx] = max(v, 1e-3)
				default:
					d.hfs[by*bw+bx] = max(v, 1e-3)
				}
			}
		}
	}
	return bw, bh
}

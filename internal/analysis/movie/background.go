package movie

import "math"

// The detector's view of the frame around each particle: scan lines
// levelled, the film's slow background removed by a grey-scale opening
// (a rolling ball with a square foot, larger than any particle), and the
// noise and offset of what remains measured block by block, so a particle
// is judged against its own neighbourhood and not against the brightest
// thing in the frame.

// levelRows removes scan-line offsets: each row is shifted so its median
// is the median of all rows' medians. Particles cover much less than half
// of a row, so a row's median is its background.
func levelRows(a []float32, w, h int, tmp []float32, meds []float32) {
	for y := range h {
		row := tmp[:w]
		copy(row, a[y*w:(y+1)*w])
		meds[y] = selectK(row, w/2)
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

// selectK returns the k-th smallest value of v (reordering v): Hoare's
// quickselect, linear on average.
func selectK(v []float32, k int) float32 {
	lo, hi := 0, len(v)-1
	for lo < hi {
		p := v[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for v[i] < p {
				i++
			}
			for v[j] > p {
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

// background estimates the slowly varying film under the particles: the
// smoothed frame b is averaged 2×2, opened (eroded then dilated) with a
// square of side 2·radius+1 pixels of the full frame, smoothed by a box of
// the same size and scaled back up bilinearly into bg.
func (d *Detector) background(b, bg []float32, w, h, radius int) {
	hw, hh := (w+1)/2, (h+1)/2
	n := hw * hh
	if cap(d.half) < 3*n {
		d.half = make([]float32, 3*n)
	}
	half, tmp, out := d.half[:n], d.half[n:2*n], d.half[2*n:3*n]
	for y := range hh {
		y0, y1 := 2*y, min(2*y+1, h-1)
		for x := range hw {
			x0, x1 := 2*x, min(2*x+1, w-1)
			half[y*hw+x] = (b[y0*w+x0] + b[y0*w+x1] + b[y1*w+x0] + b[y1*w+x1]) / 4
		}
	}
	r := max(1, radius/2)
	d.filter2D(half, tmp, out, hw, hh, r, minOf)
	d.filter2D(out, tmp, half, hw, hh, r, maxOf)
	d.boxBlur(half, tmp, out, hw, hh, r)
	// Bilinear back to full size: pixel (x, y) sits at (x-0.5)/2 in the
	// half grid.
	for y := range h {
		fy := max(0, (float64(y)-0.5)/2)
		iy := min(int(fy), hh-1)
		jy := min(iy+1, hh-1)
		ty := float32(fy - float64(iy))
		for x := range w {
			fx := max(0, (float64(x)-0.5)/2)
			ix := min(int(fx), hw-1)
			jx := min(ix+1, hw-1)
			tx := float32(fx - float64(ix))
			top := out[iy*hw+ix]*(1-tx) + out[iy*hw+jx]*tx
			bot := out[jy*hw+ix]*(1-tx) + out[jy*hw+jx]*tx
			bg[y*w+x] = top*(1-ty) + bot*ty
		}
	}
}

func minOf(a, b float32) float32 { return min(a, b) }
func maxOf(a, b float32) float32 { return max(a, b) }

// filter2D applies a running min or max over a (2r+1)² square: rows into
// tmp, then columns into dst (van Herk / Gil-Werman: three comparisons a
// pixel whatever r).
func (d *Detector) filter2D(src, tmp, dst []float32, w, h, r int, op func(a, b float32) float32) {
	size := 2*r + 1
	line := max(w, h) + 2*size
	if cap(d.vh) < 3*line {
		d.vh = make([]float32, 3*line)
	}
	in, g, hb := d.vh[:line], d.vh[line:2*line], d.vh[2*line:3*line]
	run := func(n int, get func(i int) float32, set func(i int, v float32)) {
		// Pad by r on both sides with the edge values.
		m := n + 2*r
		for i := range m {
			in[i] = get(min(max(i-r, 0), n-1))
		}
		for s := 0; s < m; s += size {
			e := min(s+size, m)
			g[s] = in[s]
			for i := s + 1; i < e; i++ {
				g[i] = op(g[i-1], in[i])
			}
			hb[e-1] = in[e-1]
			for i := e - 2; i >= s; i-- {
				hb[i] = op(hb[i+1], in[i])
			}
		}
		for i := range n {
			// The window [i, i+size) of the padded line.
			j := i + size - 1
			if j >= m {
				j = m - 1
			}
			set(i, op(hb[i], g[j]))
		}
	}
	for y := range h {
		row := src[y*w : (y+1)*w]
		out := tmp[y*w : (y+1)*w]
		run(w, func(i int) float32 { return row[i] }, func(i int, v float32) { out[i] = v })
	}
	for x := range w {
		run(h, func(i int) float32 { return tmp[i*w+x] }, func(i int, v float32) { dst[i*w+x] = v })
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
const noiseBlock = 32

// noiseMap measures, block by block, the median (offset) and the robust
// standard deviation (1.4826 × the median absolute deviation) of the
// residual r, from every other pixel of every other row; each block then
// takes the medians of its own and its neighbours' (3×3), so a block
// crowded with particles does not raise its noise.
func (d *Detector) noiseMap(r []float32, w, h int) (bw, bh int) {
	bw, bh = (w+noiseBlock-1)/noiseBlock, (h+noiseBlock-1)/noiseBlock
	nb := bw * bh
	if cap(d.offs) < 2*nb {
		d.offs, d.sigs = make([]float32, 2*nb), make([]float32, 2*nb)
	}
	offs, sigs := d.offs[nb:2*nb], d.sigs[nb:2*nb]
	for by := range bh {
		for bx := range bw {
			s := d.sample[:0]
			for y := by * noiseBlock; y < min(h, (by+1)*noiseBlock); y += 2 {
				row := r[y*w:]
				for x := bx * noiseBlock; x < min(w, (bx+1)*noiseBlock); x += 2 {
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
		}
	}
	var nine [9]float32
	for by := range bh {
		for bx := range bw {
			for k, src := range [][]float32{offs, sigs} {
				n := 0
				for y := max(0, by-1); y <= min(bh-1, by+1); y++ {
					for x := max(0, bx-1); x <= min(bw-1, bx+1); x++ {
						nine[n] = src[y*bw+x]
						n++
					}
				}
				v := selectK(nine[:n], n/2)
				if k == 0 {
					d.offs[by*bw+bx] = v
				} else {
					d.sigs[by*bw+bx] = max(v, 1e-3)
				}
			}
		}
	}
	return bw, bh
}

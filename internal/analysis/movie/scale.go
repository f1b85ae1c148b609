// Package movie is the spatiotemporal analysis: it streams a movie's frames
// (any numeric type) through robust 8-bit scaling into an H.264 MP4, finds
// nanoparticles in every frame, links them into tracks, and writes the
// per-frame counts, the tracks and an annotated MP4.
package movie

// Scaler maps a float frame to 8 bits between robust percentiles of that
// frame (so a few hot pixels do not wash the picture out). Its buffers are
// reused from frame to frame.
type Scaler struct {
	// Low and High are the percentiles mapped to 0 and 255 (default 0.5 and
	// 99.5).
	Low, High float64
	sample    []float64
}

// Scale writes frame into dst (same length) and returns the value range used.
func (s *Scaler) Scale(frame []float64, dst []uint8) (lo, hi float64) {
	lo, hi = s.Range(frame)
	k := 255 / (hi - lo)
	for i, v := range frame {
		dst[i] = toGray((v - lo) * k)
	}
	return lo, hi
}

// toGray rounds a value scaled to 0..255 to 8 bits, clipping.
func toGray(x float64) uint8 {
	switch {
	case x <= 0:
		return 0
	case x >= 255:
		return 255
	default:
		return uint8(x + 0.5)
	}
}

// Range returns the frame's Low and High percentiles, from a sample of
// about 16k pixels.
func (s *Scaler) Range(frame []float64) (lo, hi float64) {
	low, high := s.Low, s.High
	if low == 0 && high == 0 {
		low, high = 0.5, 99.5
	}
	step := max(1, len(frame)/16384)
	s.sample = s.sample[:0]
	for i := 0; i < len(frame); i += step {
		s.sample = append(s.sample, frame[i])
	}
	n := len(s.sample)
	if n == 0 {
		return 0, 1
	}
	// Two selections instead of a sort.
	lo = selectK(s.sample, min(n-1, int(low/100*float64(n-1))))
	hi = selectK(s.sample, min(n-1, int(high/100*float64(n-1)+0.5)))
	if hi <= lo {
		hi = lo + 1
	}
	return lo, hi
}

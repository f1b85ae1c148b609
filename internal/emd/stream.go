package emd

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// gatePulse ends the current pixel in a Velox SpectrumStream.
const gatePulse = 65535

// Stream is the raw X-ray event stream of a Velox spectrum image: for each
// detector, a sequence of channel numbers, with 65535 marking the end of a
// pixel. Pixels run row by row and frame after frame.
type Stream struct {
	NY, NX   int
	Channels int
	// Frames is the number of scan frames Velox recorded (0 if unknown).
	Frames int
	Energy Axis
	// Detectors holds one event stream per EDS detector stream in the file;
	// they are summed when decoded, as HyperSpy does by default.
	Detectors [][]uint16
}

// ReadStream reads the event streams of a spectrum image signal.
func (f *File) ReadStream(ctx context.Context, s *Signal) (*Stream, error) {
	if s.Kind != KindSpectrumImage {
		return nil, fmt.Errorf("read stream %s: %w: not a spectrum image", s.Path, ErrUnsupported)
	}
	st := &Stream{NY: s.Axes[0].Size, NX: s.Axes[1].Size, Channels: s.chans, Frames: s.frames, Energy: s.Axes[2]}
	for _, p := range s.streams {
		di, err := f.h.info(p)
		if err != nil {
			return nil, err
		}
		if len(di.Shape) != 2 || di.Shape[1] != 1 {
			return nil, fmt.Errorf("stream %s: %w: want (N, 1), got shape %v", p, ErrFormat, di.Shape)
		}
		// One whole-dataset read (readUint16 checks the size limit): the library's hyperslab path re-walks the
		// chunk index per request and is far slower for streams.
		v, err := f.h.readUint16(p)
		if err != nil {
			return nil, err
		}
		st.Detectors = append(st.Detectors, v)
	}
	return st, nil
}

// SelectDetectors returns the stream restricted to the given detector
// streams (indexes into Detectors); none means all.
func (st *Stream) SelectDetectors(idx []int) (*Stream, error) {
	if len(idx) == 0 {
		return st, nil
	}
	out := *st
	out.Detectors = nil
	seen := map[int]bool{}
	for _, i := range idx {
		if i < 0 || i >= len(st.Detectors) {
			return nil, fmt.Errorf("detector %d: %w: the file has detectors 0-%d", i, ErrNotFound, len(st.Detectors)-1)
		}
		if !seen[i] {
			seen[i] = true
			out.Detectors = append(out.Detectors, st.Detectors[i])
		}
	}
	return &out, nil
}

// FrameRange selects scan frames [First, Last) of a stream; Last 0 means all.
type FrameRange struct{ First, Last int }

// Pixels returns NY*NX.
func (st *Stream) Pixels() int { return st.NY * st.NX }

// Walk calls fn(pixel, channel) for every X-ray event in the selected frames,
// summing all detectors. Events with a channel outside [0, Channels) are
// skipped and counted in the return value.
func (st *Stream) Walk(r FrameRange, fn func(pixel int, channel int)) (dropped int) {
	for _, p := range st.parts(r, 1) {
		nav := p.nav0
		for _, v := range p.ev {
			if v == gatePulse {
				if nav++; nav == p.npix {
					nav = 0
				}
				continue
			}
			if int(v) >= st.Channels {
				dropped++
				continue
			}
			fn(nav, int(v))
		}
	}
	return dropped
}

// minPart is the smallest stretch worth a goroutine (a variable for tests).
var minPart = 1 << 16

// part is a stretch of one detector's events whose first event belongs to
// pixel nav0.
type part struct {
	ev         []uint16
	nav0, npix int
}

// parts returns the events of the selected frames of every detector, cut
// into about n stretches at pixel boundaries so they can be decoded in
// parallel.
func (st *Stream) parts(r FrameRange, n int) []part {
	npix := st.Pixels()
	var out []part
	for _, ev := range st.Detectors {
		// Frame f starts after f*npix gate pulses.
		lo, hi := 0, len(ev)
		if r.First > 0 || r.Last > 0 {
			lo, hi = gateIndex(ev, r.First*npix), len(ev)
			if r.Last > 0 {
				hi = gateIndex(ev, r.Last*npix)
			}
		}
		ev = ev[lo:hi]
		step := max(len(ev)/max(n, 1), minPart)
		nav := 0
		for len(ev) > 0 {
			cut := min(step, len(ev))
			// Extend to just after the next gate so a stretch ends a pixel.
			for cut < len(ev) && ev[cut-1] != gatePulse {
				cut++
			}
			out = append(out, part{ev: ev[:cut], nav0: nav, npix: npix})
			nav = (nav + countGates(ev[:cut])) % max(npix, 1)
			ev = ev[cut:]
		}
	}
	return out
}

// gateIndex returns the index just after the k-th gate pulse (len(ev) if
// there are fewer).
func gateIndex(ev []uint16, k int) int {
	if k <= 0 {
		return 0
	}
	for i, v := range ev {
		if v == gatePulse {
			if k--; k == 0 {
				return i + 1
			}
		}
	}
	return len(ev)
}

func countGates(ev []uint16) int {
	n := 0
	for _, v := range ev {
		if v == gatePulse {
			n++
		}
	}
	return n
}

// inParallel runs fn on each part on all cores; fn's worker index w is below
// the returned worker count and is never used by two goroutines at once.
func inParallel(parts []part, fn func(w int, p part)) int {
	workers := min(runtime.GOMAXPROCS(0), len(parts))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(parts) {
					return
				}
				fn(w, parts[i])
			}
		})
	}
	wg.Wait()
	return workers
}

// Sum returns the total counts per pixel (the intensity map, NY×NX) and per
// channel (the summed spectrum) without building the cube, and the number of
// events whose channel was outside [0, Channels).
func (st *Stream) Sum(r FrameRange) (image []uint64, spectrum []uint64, dropped int) {
	return st.SumFrom(r, 0)
}

// SumFrom is Sum with the intensity map counting only channels from
// minChannel up (the X-rays above the detector's zero peak); the spectrum
// counts every channel.
func (st *Stream) SumFrom(r FrameRange, minChannel int) (image []uint64, spectrum []uint64, dropped int) {
	from := uint16(min(max(minChannel, 0), gatePulse))
	parts := st.parts(r, 4*runtime.GOMAXPROCS(0))
	nw := min(runtime.GOMAXPROCS(0), len(parts))
	imgs := make([][]uint64, nw)
	specs := make([][]uint64, nw)
	drops := make([]int, nw)
	for w := range nw {
		imgs[w] = make([]uint64, st.Pixels())
		specs[w] = make([]uint64, st.Channels)
	}
	inParallel(parts, func(w int, p part) {
		img, spec, ch := imgs[w], specs[w], st.Channels
		nav, d := p.nav0, 0
		for _, v := range p.ev {
			if v == gatePulse {
				if nav++; nav == p.npix {
					nav = 0
				}
				continue
			}
			if int(v) >= ch {
				d++
				continue
			}
			if v >= from {
				img[nav]++
			}
			spec[v]++
		}
		drops[w] += d
	})
	image = make([]uint64, st.Pixels())
	spectrum = make([]uint64, st.Channels)
	for w := range nw {
		for i, v := range imgs[w] {
			image[i] += v
		}
		for i, v := range specs[w] {
			spectrum[i] += v
		}
		dropped += drops[w]
	}
	return image, spectrum, dropped
}

// Cube builds the full NY×NX×Channels count cube. It refuses cubes larger
// than maxElems elements.
func (st *Stream) Cube(r FrameRange, maxElems int64) ([]uint32, error) {
	n := int64(st.Pixels()) * int64(st.Channels)
	if n > maxElems {
		return nil, fmt.Errorf("spectrum image cube of %d×%d×%d: %w", st.NY, st.NX, st.Channels, ErrTooLarge)
	}
	cube := make([]uint32, n)
	st.Walk(r, func(p, c int) { cube[p*st.Channels+c]++ })
	return cube, nil
}

// Project accumulates, for every pixel, n weighted sums of its events:
// an event in channel c adds coef[c*n+k] to sum k (a linear model's
// per-pixel estimate, e.g. fitted net intensities). Channels outside
// [lo, hi) are skipped.
func (st *Stream) Project(r FrameRange, coef []float32, n, lo, hi int) [][]float32 {
	npix := st.Pixels()
	parts := st.parts(r, 4*runtime.GOMAXPROCS(0))
	nw := min(runtime.GOMAXPROCS(0), len(parts))
	acc := make([][]float32, nw)
	for w := range nw {
		acc[w] = make([]float32, npix*n)
	}
	lo, hi = max(lo, 0), min(hi, st.Channels, len(coef)/max(n, 1))
	inParallel(parts, func(w int, p part) {
		a := acc[w]
		nav := p.nav0
		for _, v := range p.ev {
			if v == gatePulse {
				if nav++; nav == p.npix {
					nav = 0
				}
				continue
			}
			c := int(v)
			if c < lo || c >= hi {
				continue
			}
			row := coef[c*n : c*n+n]
			dst := a[nav*n : nav*n+n]
			for k, x := range row {
				dst[k] += x
			}
		}
	})
	out := make([][]float32, n)
	for k := range out {
		out[k] = make([]float32, npix)
	}
	for _, a := range acc {
		for px := range npix {
			for k := range n {
				out[k][px] += a[px*n+k]
			}
		}
	}
	return out
}

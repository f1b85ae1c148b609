package emd

import (
	"context"
	"fmt"
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
		// One whole-dataset read (readFloat64 checks the size limit): the library's hyperslab path re-walks the
		// chunk index per request and is far slower for streams.
		v, _, err := f.h.readFloat64(p)
		if err != nil {
			return nil, err
		}
		out := make([]uint16, len(v))
		for i, x := range v {
			out[i] = uint16(x)
		}
		st.Detectors = append(st.Detectors, out)
	}
	return st, nil
}

// FrameRange selects scan frames [First, Last) of a stream; Last 0 means all.
type FrameRange struct{ First, Last int }

// Pixels returns NY*NX.
func (st *Stream) Pixels() int { return st.NY * st.NX }

// Walk calls fn(pixel, channel) for every X-ray event in the selected frames,
// summing all detectors. Events with a channel outside [0, Channels) are
// skipped and counted in the return value.
func (st *Stream) Walk(r FrameRange, fn func(pixel int, channel int)) (dropped int) {
	npix := st.Pixels()
	for _, ev := range st.Detectors {
		nav, frame := 0, 0
		for _, v := range ev {
			if nav == npix {
				nav = 0
				frame++
				if r.Last > 0 && frame >= r.Last {
					break
				}
			}
			if v == gatePulse {
				nav++
				continue
			}
			if frame < r.First {
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

// Sum returns the total counts per pixel (the intensity map, NY×NX) and per
// channel (the summed spectrum) without building the cube.
func (st *Stream) Sum(r FrameRange) (image []uint64, spectrum []uint64) {
	image = make([]uint64, st.Pixels())
	spectrum = make([]uint64, st.Channels)
	st.Walk(r, func(p, c int) {
		image[p]++
		spectrum[c]++
	})
	return image, spectrum
}

// Maps accumulates one NY×NX map per label: lut[channel] is the label of a
// channel (-1 for none), and labels run from 0 to n-1.
func (st *Stream) Maps(r FrameRange, lut []int, n int) [][]uint32 {
	maps := make([][]uint32, n)
	for i := range maps {
		maps[i] = make([]uint32, st.Pixels())
	}
	st.Walk(r, func(p, c int) {
		if c < len(lut) && lut[c] >= 0 {
			maps[lut[c]][p]++
		}
	})
	return maps
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

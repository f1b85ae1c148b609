package emd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// FrameReader reads the frames of an image stack one at a time into a
// caller's buffer. Velox stores a stack as (H, W, T) in chunks of one frame;
// then each frame is a single read of its chunk, found once in the chunk
// index, and decoded in place: a 1.2 GB movie streams at disk speed without
// ever being held in memory. Other layouts (Berkeley's (T, H, W) time
// series among them) go through the general reader.
type FrameReader struct {
	f      *File
	s      *Signal
	H, W   int
	Frames int
	fh     *os.File
	chunks map[uint64]chunkLoc // frame -> chunk
	lay    *rawLayout
	raw    []byte
}

type chunkLoc struct {
	addr, size uint64
}

// Frames opens a frame reader on an image or image stack signal.
func (f *File) Frames(ctx context.Context, s *Signal) (*FrameReader, error) {
	if s.Kind != KindImage && s.Kind != KindImageStack {
		return nil, fmt.Errorf("frames of %s: %w: not an image", s.Path, ErrUnsupported)
	}
	di, err := f.h.info(s.Path)
	if err != nil {
		return nil, err
	}
	r := &FrameReader{f: f, s: s, Frames: 1}
	l, ok := f.stackLayout(s, di)
	switch {
	case ok:
		r.H, r.W, r.Frames = l.h, l.w, l.frames
		if err := f.checkFrame(s, di, l); err != nil {
			return nil, err
		}
	case len(di.Shape) == 2:
		r.H, r.W = di.Shape[0], di.Shape[1]
		return r, nil
	default:
		return nil, fmt.Errorf("frames of %s: %w: shape %v", s.Path, ErrUnsupported, di.Shape)
	}
	// (The fast path reads Velox's (H, W, 1) chunks; Berkeley's (T, H, W)
	// goes through the general reader.)
	if di.Layout == "chunked" && !l.timeFirst {
		if err := r.index(di); err != nil && !errors.Is(err, errNoFastPath) {
			return nil, fmt.Errorf("frames of %s: %w", s.Path, err)
		}
	}
	return r, nil
}

// index finds every frame's chunk when chunks are whole frames.
func (r *FrameReader) index(di dsInfo) error {
	fh, err := os.Open(r.f.h.path)
	if err != nil {
		return err
	}
	lay, err := readRawLayout(fh, r.f.h.size, r.f.h.datasets[r.s.Path].Address())
	if err != nil {
		fh.Close()
		return err
	}
	ok := !lay.filtered && lay.haveDtype && !lay.bigEndian && len(lay.chunk) == 3 &&
		lay.chunk[0] == uint64(r.H) && lay.chunk[1] == uint64(r.W) && lay.chunk[2] == 1 &&
		((lay.class == 1 && (lay.typeSize == 4 || lay.typeSize == 8)) || (lay.class == 0 && (lay.typeSize == 1 || lay.typeSize == 2 || lay.typeSize == 4)))
	if !ok {
		fh.Close()
		return errNoFastPath
	}
	chunks := map[uint64]chunkLoc{}
	nodes := 0
	var walk func(addr uint64, depth int) error
	walk = func(addr uint64, depth int) error {
		if depth > maxBTreeDepth {
			return fmt.Errorf("%w: chunk index deeper than %d", ErrFormat, maxBTreeDepth)
		}
		if nodes++; nodes > maxBTreeNodes {
			return fmt.Errorf("%w: chunk index too large", ErrFormat)
		}
		const rank = 3
		keySize := 8 + 8*(rank+1)
		hdr := make([]byte, 8+2*offsetSize)
		if err := readAt(fh, r.f.h.size, hdr, addr); err != nil {
			return err
		}
		if !bytes.Equal(hdr[:4], []byte("TREE")) || hdr[4] != 1 {
			return fmt.Errorf("%w: bad chunk index node at %d", ErrFormat, addr)
		}
		level := int(hdr[5])
		entries := int(binary.LittleEndian.Uint16(hdr[6:]))
		body := make([]byte, entries*(keySize+offsetSize)+keySize)
		if err := readAt(fh, r.f.h.size, body, addr+uint64(len(hdr))); err != nil {
			return err
		}
		for i := range entries {
			key := body[i*(keySize+offsetSize):]
			child := binary.LittleEndian.Uint64(key[keySize:])
			if level > 0 {
				if err := walk(child, depth+1); err != nil {
					return err
				}
				continue
			}
			if binary.LittleEndian.Uint32(key[4:]) != 0 {
				return errNoFastPath // a filter was applied to this chunk
			}
			t := binary.LittleEndian.Uint64(key[8+16:])
			if binary.LittleEndian.Uint64(key[8:]) != 0 || binary.LittleEndian.Uint64(key[16:]) != 0 || t >= uint64(r.Frames) {
				continue // not a frame of the visible extent
			}
			chunks[t] = chunkLoc{addr: child, size: uint64(binary.LittleEndian.Uint32(key[0:]))}
		}
		return nil
	}
	if err := walk(lay.btree, 0); err != nil {
		fh.Close()
		return err
	}
	r.fh, r.chunks, r.lay = fh, chunks, lay
	r.raw = make([]byte, r.H*r.W*lay.typeSize)
	return nil
}

// Close releases the reader's file handle.
func (r *FrameReader) Close() error {
	if r.fh != nil {
		return r.fh.Close()
	}
	return nil
}

// Read decodes frame t (row-major H×W) into dst, which must hold H*W values.
func (r *FrameReader) Read(ctx context.Context, t int, dst []float64) error {
	if len(dst) != r.H*r.W {
		return fmt.Errorf("read frame: buffer of %d for %d×%d", len(dst), r.H, r.W)
	}
	if t < 0 || t >= r.Frames {
		return fmt.Errorf("frame %d of %d: %w", t, r.Frames, ErrNotFound)
	}
	if r.chunks == nil {
		v, err := r.f.ReadFrame(ctx, r.s, t)
		if err != nil {
			return err
		}
		copy(dst, v)
		return nil
	}
	c, ok := r.chunks[uint64(t)]
	if !ok {
		clear(dst) // never written: the fill value
		return nil
	}
	if c.size < uint64(len(r.raw)) {
		return fmt.Errorf("frame %d: %w: chunk of %d bytes, need %d", t, ErrFormat, c.size, len(r.raw))
	}
	if err := readAt(r.fh, r.f.h.size, r.raw, c.addr); err != nil {
		return fmt.Errorf("frame %d: %w", t, err)
	}
	decode(dst, r.raw, r.lay)
	return nil
}

func decode(dst []float64, raw []byte, lay *rawLayout) {
	le := binary.LittleEndian
	switch {
	case lay.class == 1 && lay.typeSize == 8:
		for i := range dst {
			dst[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
	case lay.class == 1 && lay.typeSize == 4:
		for i := range dst {
			dst[i] = float64(math.Float32frombits(le.Uint32(raw[4*i:])))
		}
	case lay.typeSize == 1 && lay.signed:
		for i := range dst {
			dst[i] = float64(int8(raw[i]))
		}
	case lay.typeSize == 1:
		for i := range dst {
			dst[i] = float64(raw[i])
		}
	case lay.typeSize == 2 && lay.signed:
		for i := range dst {
			dst[i] = float64(int16(le.Uint16(raw[2*i:])))
		}
	case lay.typeSize == 2:
		for i := range dst {
			dst[i] = float64(le.Uint16(raw[2*i:]))
		}
	case lay.typeSize == 4 && lay.signed:
		for i := range dst {
			dst[i] = float64(int32(le.Uint32(raw[4*i:])))
		}
	default:
		for i := range dst {
			dst[i] = float64(le.Uint32(raw[4*i:]))
		}
	}
}

var _ io.Closer = (*FrameReader)(nil)

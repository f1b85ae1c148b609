package emd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The raw chunk reader is a fast path for the one dataset shape that
// dominates spectrum-image analysis: Velox SpectrumStreams, large (N, 1)
// uint16 datasets stored in uncompressed chunks along the first dimension and
// indexed by a version-1 B-tree. The general library converts every element
// to float64 through a per-element path (about 0.1 GB/s); here each chunk is
// one ReadAt straight into the output. Anything outside that shape (filters,
// other index types, big-endian data) reports errNoFastPath and the caller
// uses the general reader. Every length and address read from the file is
// bounds-checked, so hostile files produce ErrFormat, not panics or
// allocations beyond the dataset size already checked by checkSize.

// errNoFastPath means the dataset is valid but not in the fast path's shape.
var errNoFastPath = errors.New("no fast path")

// HDF5 object header message types used here.
const (
	msgDatatype     = 0x03
	msgLayout       = 0x08
	msgFilters      = 0x0B
	msgContinuation = 0x10
)

// Limits that keep a hostile file from making the walk expensive.
const (
	maxHeaderBlocks = 64
	maxBTreeDepth   = 32
	maxBTreeNodes   = 1 << 20
	offsetSize      = 8 // Velox files use 8-byte offsets and lengths
)

type rawLayout struct {
	btree     uint64   // address of the chunk B-tree
	chunk     []uint64 // chunk dimensions in elements (rank entries)
	elemSize  int
	filtered  bool
	dtypeOK   bool // little-endian 2-byte unsigned integer
	haveDtype bool
	// The datatype: class 0 fixed-point, 1 floating-point.
	class     int
	signed    bool
	bigEndian bool
	typeSize  int
}

// readUint16Chunks reads a whole (N, 1)-style uint16 dataset through its raw
// chunks. di must already have passed checkSize.
func readUint16Chunks(r io.ReaderAt, fileSize int64, header uint64, di dsInfo) ([]uint16, error) {
	lay, err := readRawLayout(r, fileSize, header)
	if err != nil {
		return nil, err
	}
	if lay.filtered || !lay.haveDtype || !lay.dtypeOK || lay.elemSize != 2 {
		return nil, errNoFastPath
	}
	rank := len(di.Shape)
	if rank == 0 || len(lay.chunk) != rank {
		return nil, errNoFastPath
	}
	// Chunked along the first dimension only.
	row := uint64(1)
	for i := 1; i < rank; i++ {
		if lay.chunk[i] != uint64(di.Shape[i]) {
			return nil, errNoFastPath
		}
		row *= uint64(di.Shape[i])
	}
	if lay.chunk[0] == 0 || lay.chunk[0]*row > 1<<28 {
		return nil, fmt.Errorf("%w: chunk of %d×%d elements", ErrFormat, lay.chunk[0], row)
	}
	n := uint64(di.Elems())
	out := make([]uint16, n)
	chunkElems := lay.chunk[0] * row
	buf := make([]byte, chunkElems*2)
	nodes := 0
	var walk func(addr uint64, depth int, wantLevel int) error
	walk = func(addr uint64, depth int, wantLevel int) error {
		if depth > maxBTreeDepth {
			return fmt.Errorf("%w: chunk index deeper than %d", ErrFormat, maxBTreeDepth)
		}
		if nodes++; nodes > maxBTreeNodes {
			return fmt.Errorf("%w: chunk index of more than %d nodes", ErrFormat, maxBTreeNodes)
		}
		keySize := 8 + 8*(rank+1)
		hdr := make([]byte, 8+2*offsetSize)
		if err := readAt(r, fileSize, hdr, addr); err != nil {
			return err
		}
		if !bytes.Equal(hdr[:4], []byte("TREE")) || hdr[4] != 1 {
			return fmt.Errorf("%w: bad chunk index node at %d", ErrFormat, addr)
		}
		level := int(hdr[5])
		if wantLevel >= 0 && level != wantLevel {
			return fmt.Errorf("%w: chunk index node at %d has level %d, want %d", ErrFormat, addr, level, wantLevel)
		}
		entries := int(binary.LittleEndian.Uint16(hdr[6:]))
		body := make([]byte, entries*(keySize+offsetSize)+keySize)
		if err := readAt(r, fileSize, body, addr+uint64(len(hdr))); err != nil {
			return err
		}
		for i := range entries {
			key := body[i*(keySize+offsetSize):]
			child := binary.LittleEndian.Uint64(key[keySize:])
			if level > 0 {
				if err := walk(child, depth+1, level-1); err != nil {
					return err
				}
				continue
			}
			size := uint64(binary.LittleEndian.Uint32(key[0:]))
			mask := binary.LittleEndian.Uint32(key[4:])
			if mask != 0 {
				return errNoFastPath
			}
			first := binary.LittleEndian.Uint64(key[8:])
			for d := 1; d <= rank; d++ {
				if binary.LittleEndian.Uint64(key[8+8*d:]) != 0 {
					return fmt.Errorf("%w: chunk offset along dimension %d", ErrFormat, d)
				}
			}
			if first%lay.chunk[0] != 0 {
				return fmt.Errorf("%w: chunk offset %d not on a chunk boundary", ErrFormat, first)
			}
			start := first * row
			if start >= n {
				continue // a chunk beyond the current extent holds nothing visible
			}
			elems := min(chunkElems, n-start)
			if size < elems*2 {
				return fmt.Errorf("%w: chunk at %d holds %d bytes, need %d", ErrFormat, child, size, elems*2)
			}
			b := buf[:elems*2]
			if err := readAt(r, fileSize, b, child); err != nil {
				return err
			}
			dst := out[start : start+elems]
			for j := range dst {
				dst[j] = binary.LittleEndian.Uint16(b[2*j:])
			}
		}
		return nil
	}
	if err := walk(lay.btree, 0, -1); err != nil {
		return nil, err
	}
	return out, nil
}

func readAt(r io.ReaderAt, fileSize int64, b []byte, addr uint64) error {
	if addr > uint64(fileSize) || uint64(len(b)) > uint64(fileSize)-addr {
		return fmt.Errorf("%w: %d bytes at offset %d beyond the end of a %d-byte file", ErrFormat, len(b), addr, fileSize)
	}
	if _, err := r.ReadAt(b, int64(addr)); err != nil {
		return fmt.Errorf("%w: read at %d: %w", ErrFormat, addr, err)
	}
	return nil
}

// readRawLayout walks a dataset's object header (version 1 or 2) for the
// layout, datatype and filter messages.
func readRawLayout(r io.ReaderAt, fileSize int64, addr uint64) (*rawLayout, error) {
	lay := &rawLayout{}
	var sawLayout bool
	onMsg := func(typ int, data []byte) error {
		switch typ {
		case msgFilters:
			lay.filtered = true
		case msgDatatype:
			if len(data) < 8 {
				return fmt.Errorf("%w: short datatype message", ErrFormat)
			}
			lay.haveDtype = true
			class := data[0] & 0x0F
			bigEndian := data[1]&1 != 0
			signed := data[1]&8 != 0
			size := binary.LittleEndian.Uint32(data[4:])
			lay.dtypeOK = class == 0 && !bigEndian && !signed && size == 2
			lay.class, lay.signed, lay.bigEndian, lay.typeSize = int(class), signed, bigEndian, int(size)
		case msgLayout:
			if len(data) < 2 {
				return fmt.Errorf("%w: short layout message", ErrFormat)
			}
			if data[0] != 3 || data[1] != 2 {
				return errNoFastPath // not a version-3 chunked layout
			}
			if len(data) < 3 {
				return fmt.Errorf("%w: short layout message", ErrFormat)
			}
			nd := int(data[2])
			if nd < 2 || len(data) < 3+offsetSize+4*nd {
				return fmt.Errorf("%w: layout message of %d dimensions", ErrFormat, nd)
			}
			lay.btree = binary.LittleEndian.Uint64(data[3:])
			for i := range nd {
				v := uint64(binary.LittleEndian.Uint32(data[3+offsetSize+4*i:]))
				if i == nd-1 {
					lay.elemSize = int(v)
				} else {
					lay.chunk = append(lay.chunk, v)
				}
			}
			sawLayout = true
		}
		return nil
	}
	if err := walkHeader(r, fileSize, addr, onMsg); err != nil {
		return nil, err
	}
	if !sawLayout {
		return nil, errNoFastPath
	}
	return lay, nil
}

// walkHeader calls fn for each message of the object header at addr,
// following continuation blocks.
func walkHeader(r io.ReaderAt, fileSize int64, addr uint64, fn func(typ int, data []byte) error) error {
	pre := make([]byte, 16)
	if err := readAt(r, fileSize, pre[:4], addr); err != nil {
		return err
	}
	type block struct {
		addr, size uint64
		v2         bool
	}
	var blocks []block
	v2 := bytes.Equal(pre[:4], []byte("OHDR"))
	creationOrder := false
	if v2 {
		if err := readAt(r, fileSize, pre[:6], addr); err != nil {
			return err
		}
		flags := pre[5]
		creationOrder = flags&0x04 != 0
		off := uint64(6)
		if flags&0x20 != 0 {
			off += 16
		}
		if flags&0x10 != 0 {
			off += 4
		}
		sizeLen := 1 << (flags & 3)
		sz := make([]byte, 8)
		if err := readAt(r, fileSize, sz[:sizeLen], addr+off); err != nil {
			return err
		}
		size := binary.LittleEndian.Uint64(sz)
		blocks = append(blocks, block{addr + off + uint64(sizeLen), size, true})
	} else {
		if err := readAt(r, fileSize, pre, addr); err != nil {
			return err
		}
		if pre[0] != 1 {
			return errNoFastPath
		}
		size := uint64(binary.LittleEndian.Uint32(pre[8:]))
		blocks = append(blocks, block{addr + 16, size, false})
	}
	for i := 0; i < len(blocks); i++ {
		if i >= maxHeaderBlocks {
			return fmt.Errorf("%w: object header of more than %d blocks", ErrFormat, maxHeaderBlocks)
		}
		b := blocks[i]
		if b.size > 1<<20 {
			return fmt.Errorf("%w: object header block of %d bytes", ErrFormat, b.size)
		}
		data := make([]byte, b.size)
		if err := readAt(r, fileSize, data, b.addr); err != nil {
			return err
		}
		if b.v2 && i > 0 {
			// A continuation block's length covers its signature and checksum;
			// the first block's size counts the messages only.
			if len(data) < 8 || !bytes.HasPrefix(data, []byte("OCHK")) {
				return fmt.Errorf("%w: bad object header continuation", ErrFormat)
			}
			data = data[4 : len(data)-4]
		}
		for len(data) > 0 {
			var typ, size int
			var hl int
			if b.v2 {
				hl = 4
				if creationOrder {
					hl = 6
				}
				if len(data) < hl {
					break // gap at the end of the block
				}
				typ, size = int(data[0]), int(binary.LittleEndian.Uint16(data[1:]))
			} else {
				hl = 8
				if len(data) < hl {
					break
				}
				typ, size = int(binary.LittleEndian.Uint16(data[0:])), int(binary.LittleEndian.Uint16(data[2:]))
			}
			if hl+size > len(data) {
				return fmt.Errorf("%w: object header message of %d bytes overruns its block", ErrFormat, size)
			}
			body := data[hl : hl+size]
			if typ == msgContinuation {
				if len(body) < 16 {
					return fmt.Errorf("%w: short continuation message", ErrFormat)
				}
				blocks = append(blocks, block{binary.LittleEndian.Uint64(body), binary.LittleEndian.Uint64(body[8:]), b.v2})
			} else if err := fn(typ, body); err != nil {
				return err
			}
			data = data[hl+size:]
		}
	}
	return nil
}

package emd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// hdf5Signature starts every HDF5 superblock.
const hdf5Signature = "\x89HDF\r\n\x1a\n"

// Superblock is the part of an HDF5 superblock needed to decide whether a
// file is complete. It is read with the standard library only, so the agent
// can call it on the instrument PC.
type Superblock struct {
	Version uint8
	// Base is the absolute file offset of the superblock.
	Base int64
	// EOF is the absolute end-of-file address the writer recorded.
	EOF int64
	// WriteOpen reports the "file is open for write" consistency flag.
	WriteOpen bool
}

// ReadSuperblock locates and parses the HDF5 superblock of r, searching the
// offsets 0, 512, 1024, 2048, ... below size.
func ReadSuperblock(r io.ReaderAt, size int64) (Superblock, error) {
	buf := make([]byte, 64)
	for base := int64(0); base+8 <= size; base = nextBase(base) {
		n, err := r.ReadAt(buf, base)
		if n < 8 {
			return Superblock{}, fmt.Errorf("read superblock: %w", cmpErr(err))
		}
		if string(buf[:8]) != hdf5Signature {
			continue
		}
		b := buf[:n]
		sb := Superblock{Base: base}
		if len(b) < 9 {
			return sb, fmt.Errorf("%w: truncated superblock", ErrFormat)
		}
		sb.Version = b[8]
		var flags uint32
		var offSize, eofAt int
		switch sb.Version {
		case 0, 1:
			if len(b) < 24 {
				return sb, fmt.Errorf("%w: truncated superblock", ErrFormat)
			}
			offSize = int(b[13])
			flags = binary.LittleEndian.Uint32(b[20:24])
			eofAt = 24 + 2*offSize
			if sb.Version == 1 {
				eofAt += 4
			}
		case 2, 3:
			if len(b) < 12 {
				return sb, fmt.Errorf("%w: truncated superblock", ErrFormat)
			}
			offSize = int(b[9])
			flags = uint32(b[11])
			eofAt = 12 + 2*offSize
		default:
			return sb, fmt.Errorf("%w: unknown superblock version %d", ErrFormat, sb.Version)
		}
		if offSize != 4 && offSize != 8 {
			return sb, fmt.Errorf("%w: offset size %d", ErrFormat, offSize)
		}
		if eofAt+offSize > len(b) {
			return sb, fmt.Errorf("%w: truncated superblock", ErrFormat)
		}
		var eof uint64
		if offSize == 8 {
			eof = binary.LittleEndian.Uint64(b[eofAt:])
		} else {
			eof = uint64(binary.LittleEndian.Uint32(b[eofAt:]))
		}
		if eof > 1<<62 {
			return sb, fmt.Errorf("%w: end-of-file address %d out of range", ErrFormat, eof)
		}
		sb.EOF = base + int64(eof)
		sb.WriteOpen = flags&1 != 0
		return sb, nil
	}
	return Superblock{}, fmt.Errorf("%w: no HDF5 signature", ErrFormat)
}

func nextBase(b int64) int64 {
	if b == 0 {
		return 512
	}
	return b * 2
}

func cmpErr(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: file too short", ErrFormat)
	}
	return err
}

// checkSuperblock rejects files that are not HDF5 or are shorter than their
// superblock says (truncated copies, files still being written).
func checkSuperblock(path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sb, err := ReadSuperblock(f, size)
	if err != nil {
		return err
	}
	if sb.EOF > size {
		return fmt.Errorf("%w: truncated: HDF5 end-of-file address is %d but the file has %d bytes", ErrFormat, sb.EOF, size)
	}
	return nil
}

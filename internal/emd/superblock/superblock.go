// Package superblock reads the HDF5 superblock with the standard library
// only, to decide whether a file is HDF5 and complete (its recorded
// end-of-file address within its size). The agent uses it on the instrument
// PC without linking the full HDF5 reader.
package superblock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Signature starts every HDF5 superblock.
const Signature = "\x89HDF\r\n\x1a\n"

// Errors.
var (
	// ErrFormat means the file is not HDF5 or its superblock is damaged.
	ErrFormat = errors.New("not a valid HDF5 file")
	// ErrIncomplete means the file is shorter than its superblock says: a
	// truncated copy, or a file still being written.
	ErrIncomplete = errors.New("incomplete HDF5 file")
)

// Superblock is the part of an HDF5 superblock needed to decide whether a
// file is complete.
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
		if string(buf[:8]) != Signature {
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

// Check rejects files that are not HDF5 (ErrFormat) or are shorter than
// their superblock says (ErrIncomplete: truncated copies, files still being
// written), or flagged as open for writing (version 2-3 superblocks).
func Check(path string, size int64) (Superblock, error) {
	f, err := os.Open(path)
	if err != nil {
		return Superblock{}, err
	}
	defer f.Close()
	sb, err := ReadSuperblock(f, size)
	if err != nil {
		return sb, err
	}
	if sb.EOF > size {
		return sb, fmt.Errorf("%w: truncated: HDF5 end-of-file address is %d but the file has %d bytes", ErrIncomplete, sb.EOF, size)
	}
	if sb.WriteOpen && sb.Version >= 2 {
		return sb, fmt.Errorf("%w: the writer has not closed the file", ErrIncomplete)
	}
	return sb, nil
}

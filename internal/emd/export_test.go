package emd

import "os"

// StreamPaths returns the SpectrumStream dataset paths of a signal.
func StreamPaths(s *Signal) []string { return s.streams }

// ReadBothWays reads a uint16 dataset through the raw chunk fast path and
// through the general library, for tests that compare the two.
func ReadBothWays(f *File, path string) (fast, lib []uint16, err error) {
	di, err := f.h.info(path)
	if err != nil {
		return nil, nil, err
	}
	fh, err := os.Open(f.h.path)
	if err != nil {
		return nil, nil, err
	}
	defer fh.Close()
	fast, err = readUint16Chunks(fh, f.h.size, f.h.datasets[path].Address(), di)
	if err != nil {
		return nil, nil, err
	}
	v, _, err := f.h.readFloat64(path)
	if err != nil {
		return nil, nil, err
	}
	lib = make([]uint16, len(v))
	for i, x := range v {
		lib[i] = uint16(x)
	}
	return fast, lib, nil
}

// FastFrames reports whether a frame reader uses the chunk fast path.
func FastFrames(r *FrameReader) bool { return r.chunks != nil }

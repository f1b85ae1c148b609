package tusserver

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// The server computes each upload's SHA-256 while the bytes arrive, reading
// every piece back from the file (the page cache) once it is written, on a
// goroutine beside the one receiving the next piece. The hash state is
// saved next to the upload after each PATCH (<id>.sha256: the offset it
// covers, then crypto/sha256's marshalled state), so a resumed upload goes
// on hashing where it stopped; a state that does not match the file (a
// crash, or bytes written by tusd's own chunked path) is rebuilt from the
// file. The transfer step then checks the agent's SHA-256 without reading
// the file again.

func (s *Server) digestPath(id string) string { return filepath.Join(s.dir, id+".sha256") }

// loadDigest returns the saved hash state of id if it covers exactly
// offset bytes.
func (s *Server) loadDigest(id string, offset int64) hash.Hash {
	b, err := os.ReadFile(s.digestPath(id))
	if err != nil || len(b) < 8 || int64(binary.BigEndian.Uint64(b)) != offset {
		return nil
	}
	h := sha256.New()
	if h.(encoding.BinaryUnmarshaler).UnmarshalBinary(b[8:]) != nil {
		return nil
	}
	return h
}

// saveDigest records that h covers the first offset bytes of id.
func (s *Server) saveDigest(id string, offset int64, h hash.Hash) error {
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	b := binary.BigEndian.AppendUint64(nil, uint64(offset))
	tmp := s.digestPath(id) + ".tmp"
	if err := os.WriteFile(tmp, append(b, state...), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, s.digestPath(id))
}

// Digest returns the hex SHA-256 of a complete upload computed as it
// arrived, or "" when the server has none (the caller hashes the file).
func (s *Server) Digest(u *Upload) string {
	if !u.Complete() || s.settled(u.ID) != nil {
		return ""
	}
	h := s.loadDigest(u.ID, u.Size)
	if h == nil {
		return ""
	}
	if fi, err := os.Stat(u.Path); err != nil || fi.Size() != u.Size {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// piece is a byte range of the upload file to hash.
type piece struct{ off, n int64 }

// hasher hashes pieces of an upload file in order, on its own goroutine.
type hasher struct {
	h     hash.Hash
	f     *os.File
	base  int64 // where the upload's first byte is in f
	next  int64 // the offset the next piece must start at
	queue chan piece
	done  chan error
}

// startHasher returns a hasher that already covers offset bytes of the
// upload whose first byte is at base in the file at path: from the saved
// state, or by hashing them from the file.
func (s *Server) startHasher(id, path string, base, offset int64) (*hasher, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	hs := &hasher{h: s.loadDigest(id, offset), f: f, base: base, queue: make(chan piece, 64), done: make(chan error, 1)}
	if hs.h == nil {
		hs.h = sha256.New()
		hs.queue <- piece{0, offset} // rebuild from the file
	}
	hs.next = offset
	go func() {
		var err error
		for p := range hs.queue {
			if err == nil && p.n > 0 {
				_, err = io.Copy(hs.h, io.NewSectionReader(hs.f, hs.base+p.off, p.n))
			}
		}
		hs.f.Close()
		hs.done <- err
	}()
	return hs, nil
}

// add queues the bytes [off, off+n), which must follow the previous ones.
func (hs *hasher) add(off, n int64) {
	if off != hs.next {
		panic(fmt.Sprintf("tusserver: hashing out of order: %d, want %d", off, hs.next))
	}
	hs.next += n
	hs.queue <- piece{off, n}
}

// finish waits for the queued pieces and returns the state and the offset
// it covers.
func (hs *hasher) finish() (hash.Hash, int64, error) {
	close(hs.queue)
	if err := <-hs.done; err != nil {
		return nil, 0, fmt.Errorf("hash upload: %w", err)
	}
	if hs.h == nil {
		return nil, 0, errors.New("hash upload: no state")
	}
	return hs.h, hs.next, nil
}

// saveHash saves the state of a PATCH's hasher (nil: none), even after a
// failed PATCH: it then covers the bytes that did arrive, which is what
// the next PATCH resumes from. A state ahead of the file after a crash
// does not match and is rebuilt.
func (s *Server) saveHash(id string, hs *hasher) { s.finishHash(id, hs)() }

// finishHash waits for the last pieces of a PATCH's hasher (nil: none)
// and returns what saves its state, which may be called later (a
// journalled PATCH saves it in the background).
func (s *Server) finishHash(id string, hs *hasher) (save func()) {
	if hs == nil {
		return func() {}
	}
	h, covered, err := hs.finish()
	return func() {
		if err != nil {
			return
		}
		if err := s.saveDigest(id, covered, h); err != nil {
			slog.Warn("save upload digest", "upload", id, "error", err)
		}
	}
}

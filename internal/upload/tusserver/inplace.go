package tusserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/picoflow/picoflow/internal/upload"
)

// Parts written in place. Joining parts by copying writes every byte to
// disk twice, and on a long fat link that second write is a quarter of
// the transfer. A part created with upload.MetaPartWhole (the whole
// file's length) and upload.MetaPartAt (where it starts) is instead
// written straight into the file the final upload will be: <first>.whole,
// named by the first part's ID (the others name it in upload.MetaPartOf).
// A part's own data file stays empty but for its length (a sparse file
// whose size is the part's offset, which is how the file store, and so
// HEAD, knows how far it got); it grows as the bytes land in the whole
// file, as an appended file would, and a PATCH is answered once both are
// synced, so the offset it answers is on disk. (After a power cut a
// length ahead of the bytes can only make the join's SHA-256 differ, and
// the client then sends the file again.) The join then only hashes the parts after the first (whose
// SHA-256 state was saved as it arrived) and renames the whole file over
// the final's empty one.

// errLayout answers a final whose in-place parts do not tile one file.
var errLayout = handler.NewError("ERR_PARTS_LAYOUT", "the parts are not the consecutive in-place parts of one file", http.StatusBadRequest)

// checkPart vets the creation of an in-place part: its place inside the
// whole file, and the first part it names (the caller's own, of the same
// file).
func (s *Server) checkPart(ctx context.Context, info handler.FileInfo) error {
	meta := info.MetaData
	if meta[upload.MetaPartWhole] == "" && meta[upload.MetaPartAt] == "" && meta[upload.MetaPartOf] == "" {
		return nil
	}
	bad := func(msg string) error {
		return handler.NewError("ERR_INVALID_PART", msg, http.StatusBadRequest)
	}
	if !info.IsPartial {
		return bad("only a partial upload is written in place")
	}
	whole, err1 := strconv.ParseInt(meta[upload.MetaPartWhole], 10, 64)
	at, err2 := strconv.ParseInt(meta[upload.MetaPartAt], 10, 64)
	if err1 != nil || err2 != nil || at < 0 || whole < 0 || at > whole || info.Size > whole-at {
		return bad(fmt.Sprintf("part of %d bytes at %q in a file of %q bytes: does not fit", info.Size, meta[upload.MetaPartAt], meta[upload.MetaPartWhole]))
	}
	first := meta[upload.MetaPartOf]
	if first == "" {
		if at != 0 {
			return bad("the first in-place part starts at 0")
		}
		return nil
	}
	if strings.ContainsAny(first, "/\\.") {
		return bad("part_of: not an upload ID")
	}
	up, err := s.Get(ctx, first)
	if err != nil || !s.callerOwns(ctx, up.Meta[upload.MetaOwner]) {
		return handler.NewError("ERR_PART_NOT_FOUND", "part "+first+" not found", http.StatusNotFound)
	}
	if !up.Partial || up.Meta[upload.MetaPartOf] != "" || up.Meta[upload.MetaPartWhole] != meta[upload.MetaPartWhole] {
		return bad("part_of: " + first + " is not the first in-place part of a file of this length")
	}
	return nil
}

// wholeOf is the file an in-place part is written into, and where the
// part starts in it; "" for any other upload.
func (s *Server) wholeOf(info handler.FileInfo) (path string, at int64) {
	if !info.IsPartial || info.MetaData[upload.MetaPartWhole] == "" {
		return "", 0
	}
	first := info.MetaData[upload.MetaPartOf]
	if first == "" {
		first = info.ID
	}
	at, _ = strconv.ParseInt(info.MetaData[upload.MetaPartAt], 10, 64)
	return filepath.Join(s.dir, first+".whole"), at
}

// target is where a PATCH writes: the upload's own file, or for an
// in-place part the whole file, positioned at the upload's offset.
type target struct {
	*os.File
	path string   // the file written, for the hasher
	base int64    // where the upload's first byte is in it
	own  *os.File // an in-place part's own file, whose size is its offset
}

// openTarget opens where the bytes of info at offset go.
func (s *Server) openTarget(info handler.FileInfo, offset int64) (*target, error) {
	whole, at := s.wholeOf(info)
	if whole == "" {
		path := s.pathOf(info)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, err
		}
		return &target{File: f, path: path}, nil
	}
	own, err := os.OpenFile(s.pathOf(info), os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(whole, os.O_WRONLY|os.O_CREATE, 0o640)
	if err == nil {
		_, err = f.Seek(at+offset, io.SeekStart)
	}
	if err != nil {
		own.Close()
		if f != nil {
			f.Close()
		}
		return nil, err
	}
	return &target{File: f, path: whole, base: at, own: own}, nil
}

// landed records that k more of the upload's bytes were written (not yet
// synced) at its offset off: the hasher hs (when not nil) reads them, and
// a part written in place shows them in its own file's length, as a file
// appended to does, and keeps them if this process dies.
func (t *target) landed(hs *hasher, off, k int64) {
	if hs != nil {
		hs.add(off, k)
	}
	if t.own != nil {
		t.own.Truncate(off + k)
	}
}

// commit makes the bytes written up to the upload's offset end durable:
// the file is synced, then (in place) the part's own file extended to it.
func (t *target) commit(end int64) error {
	err := t.Sync()
	if err == nil && t.own != nil {
		if fi, serr := t.own.Stat(); serr != nil {
			err = serr
		} else if fi.Size() < end {
			if err = t.own.Truncate(end); err == nil {
				err = t.own.Sync()
			}
		}
	}
	return err
}

// Close closes both files.
func (t *target) Close() error {
	err := t.File.Close()
	if t.own != nil {
		err = errors.Join(err, t.own.Close())
	}
	return err
}

// position is how far into its file the target has written.
func (t *target) position() int64 {
	n, _ := t.Seek(0, io.SeekCurrent)
	return n
}

// inPlace reports whether the parts were written in place (all or none;
// a mix is a client's mistake).
func (s *Server) inPlace(parts []handler.FileInfo) (bool, error) {
	n := 0
	for _, p := range parts {
		if w, _ := s.wholeOf(p); w != "" {
			n++
		}
	}
	if n != 0 && n != len(parts) {
		return false, errLayout
	}
	return n > 0, nil
}

// hashInPlace checks that the in-place parts tile their whole file, in
// order, and returns the whole file and its SHA-256 state: the first
// part's saved state, then the rest of the file read from the page cache.
func (s *Server) hashInPlace(parts []handler.FileInfo, size int64) (string, hash.Hash, error) {
	whole, _ := s.wholeOf(parts[0])
	var end int64
	for _, p := range parts {
		w, at := s.wholeOf(p)
		if w != whole || at != end {
			return "", nil, errLayout
		}
		end += p.Size
	}
	if end != size || parts[0].MetaData[upload.MetaPartWhole] != strconv.FormatInt(size, 10) {
		return "", nil, errLayout
	}
	f, err := os.Open(whole)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != size {
		return "", nil, fmt.Errorf("%s: not all of its %d bytes were written", whole, size)
	}
	from := parts[0].Size
	h := s.loadDigest(parts[0].ID, from)
	if h == nil {
		h, from = sha256.New(), 0
	}
	if _, err := io.Copy(h, io.NewSectionReader(f, from, size-from)); err != nil {
		return "", nil, err
	}
	return whole, h, nil
}

// placeWhole makes the whole file the final's data (its empty file
// replaced by a rename), durably.
func (s *Server) placeWhole(whole, final string) error {
	if err := os.Rename(whole, final); err != nil {
		return err
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

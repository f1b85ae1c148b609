package tusserver

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/picoflow/picoflow/internal/upload"
)

// Compression on the wire (a picoflow extension of tus): a PATCH with
// Content-Encoding: zstd carries the upload's next bytes as zstd frames,
// and Upload-Decoded-Length says how many bytes they decode to. The server
// decodes as the body arrives and appends the decoded bytes, so the stored
// file, the offset and the SHA-256 are those of the original bytes; a body
// cut short keeps what was decoded, and the client resumes from the offset
// as usual. Every response names the encodings the server takes
// (upload.HeaderAcceptEncoding), which is how a client learns it may
// compress.

// maxWindow bounds what a hostile frame can make the decoder allocate.
const maxWindow = 16 << 20

// decoders are reused: a zstd decoder's buffers are large.
var decoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow), zstd.WithDecoderLowmem(false))
	if err != nil {
		panic(err)
	}
	return d
}}

// decodeBufs hold decoded bytes on their way to the file (1 MiB each:
// zeroing a new one costs a small upload 0.1 ms).
var decodeBufs = sync.Pool{New: func() any {
	b := make([]byte, 1<<20)
	return &b
}}

// patchCompressed appends a zstd-encoded PATCH body. The checks are
// patch's, plus the declared decoded length against the upload's.
func (s *Server) patchCompressed(w http.ResponseWriter, r *http.Request, id string, offset int64) {
	fail := tusError(w)
	if !strings.EqualFold(r.Header.Get("Content-Encoding"), "zstd") {
		fail(http.StatusUnsupportedMediaType, "unsupported Content-Encoding (this server takes zstd)")
		return
	}
	n, err := strconv.ParseInt(r.Header.Get(upload.HeaderDecodedLength), 10, 64)
	if err != nil || n < 0 {
		fail(http.StatusBadRequest, "a compressed PATCH needs "+upload.HeaderDecodedLength)
		return
	}
	t, rc, finish := s.beginRead(w, r, id, offset, n, fail)
	if t == nil {
		return
	}
	defer finish()
	dec := decoders.Get().(*zstd.Decoder)
	defer func() {
		dec.Reset(nil)
		decoders.Put(dec)
	}()
	// A small body is kept for its journal (see journal.go) unless the
	// upload is written in place or replicas share the directory.
	var journal func(kept []byte) (bool, error)
	if s.cfg.Locker == nil && t.own == nil && t.base == 0 && t.path == filepath.Join(s.dir, id) {
		journal = func(kept []byte) (bool, error) {
			if !Journalled(n, int64(len(kept))) {
				return false, nil
			}
			err := s.writeJournal(id, offset, n, kept)
			if err != nil {
				os.Remove(s.journalPath(id))
			}
			return true, err
		}
	}
	body := newReadAhead(r.Body, journal)
	interrupt := func() { rc.SetReadDeadline(time.Now()) }
	if err := dec.Reset(body); err != nil {
		if written, _ := body.done(interrupt); written {
			os.Remove(s.journalPath(id))
		}
		t.Close()
		fail(http.StatusBadRequest, err.Error())
		return
	}
	// (Started once nothing returns before finishHash ends it.)
	hs, _ := s.startHasher(id, t.path, t.base, offset)
	// One byte more than declared shows a body that decodes to too much.
	src := io.LimitReader(dec, n+1)
	bp := decodeBufs.Get().(*[]byte)
	defer decodeBufs.Put(bp)
	buf := *bp
	var got int64
	var piece int64 // bytes written since the last background sync
	sy := startSyncer(t.File)
	for err == nil {
		k, rerr := src.Read(buf)
		if got+int64(k) > n {
			k, rerr = int(n-got), errTooLong
		}
		if k > 0 {
			wk, werr := t.Write(buf[:k])
			t.landed(hs, offset+got, int64(wk))
			got += int64(wk)
			piece += int64(wk)
			if piece >= writebackPiece {
				sy.poke()
				piece = 0
			}
			if werr != nil {
				err = werr
				break
			}
		}
		if rerr == io.EOF {
			break
		}
		err = rerr
	}
	// The hash is finished while the journal is.
	var hashed func() // saves the hasher's state
	done := make(chan struct{})
	go func() {
		defer close(done)
		hashed = s.finishHash(id, hs)
	}()
	written, jerr := body.done(interrupt)
	<-done
	if err == nil && got == n && written && jerr == nil {
		// Durable since its journal is: the decoded bytes are synced and
		// the hash's state saved in the background (a reader waits).
		s.syncLater(id, sy, t, hashed)
	} else {
		if written {
			os.Remove(s.journalPath(id))
		}
		if cerr := s.settle(id, nil, sy, t, offset+got); err == nil {
			err = cerr
		}
		hashed()
		if cerr := t.Close(); err == nil {
			err = cerr
		}
	}
	w.Header().Set("Tus-Resumable", "1.0.0")
	switch {
	case err == nil && got < n:
		fail(http.StatusBadRequest, fmt.Sprintf("the body decodes to %d bytes, %d declared (the %d that arrived are kept)", got, n, got))
	case err == nil:
		w.Header().Set("Upload-Offset", strconv.FormatInt(offset+got, 10))
		w.WriteHeader(doneStatus(w.Header()))
	case errors.Is(err, errTooLong):
		fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("the body decodes to more than the %d bytes declared (the first %d are kept)", n, got))
	case isNoSpace(err):
		slog.Error("upload: disk full", "upload", id, "dir", s.dir, "error", err)
		fail(http.StatusInsufficientStorage, fmt.Sprintf("disk full at the server: %v", err))
	case body.err == nil || body.err == io.EOF:
		// The decoder failed on bytes that did arrive.
		fail(http.StatusBadRequest, fmt.Sprintf("the zstd body is not valid: %v (the %d bytes decoded before are kept)", err, got))
	default:
		// A body cut short: the bytes that arrived are kept and the client
		// resumes from the offset it asks for.
		fail(http.StatusBadRequest, fmt.Sprintf("compressed body ended: %v (%d bytes kept)", err, got))
	}
}

var errTooLong = errors.New("body decodes to more than declared")

package tusserver

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tus/tusd/v2/pkg/handler"
)

// patch appends a tus PATCH body to the upload with splice(2): the request
// is hijacked and the socket's bytes move to the file inside the kernel,
// never through this process. tusd's own PATCH copies every byte through a
// 32 KiB buffer, which halves loopback throughput. (A body of at most
// rawCopyMax is copied instead, by patchCopied: a hijacked connection is
// closed after its answer.) The protocol checks are
// the same: Tus-Resumable, the offset+octet-stream content type, the
// declared offset equal to the stored one, and no bytes past the declared
// length; the upload lock is the one tusd uses, so HEAD and PATCH never
// interleave.
func (s *Server) patch(w http.ResponseWriter, r *http.Request) {
	id := strings.Trim(r.URL.Path, "/")
	fail := tusError(w)
	if r.Header.Get("Tus-Resumable") != "1.0.0" {
		fail(http.StatusPreconditionFailed, "unsupported tus version")
		return
	}
	if r.Header.Get("Content-Type") != "application/offset+octet-stream" {
		fail(http.StatusUnsupportedMediaType, "missing or invalid Content-Type header")
		return
	}
	offset, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || offset < 0 {
		fail(http.StatusBadRequest, "missing or invalid Upload-Offset header")
		return
	}
	if id == "" || strings.ContainsAny(id, "/\\.") {
		fail(http.StatusNotFound, "upload not found")
		return
	}
	if r.Header.Get("Content-Encoding") != "" {
		s.patchCompressed(w, r, id, offset)
		return
	}
	s.patchRaw(w, r, id, offset)
}

// patchRaw writes a raw body at offset of upload id; its answer is 204,
// or 201 where w's header has a Location (a creation with upload).
func (s *Server) patchRaw(w http.ResponseWriter, r *http.Request, id string, offset int64) {
	fail := tusError(w)
	n := r.ContentLength
	if !spliceable(w, r) {
		// A chunked body, or HTTP/2: tusd's own path, which appends to
		// the upload's own file and so cannot write a part in place.
		if info, _, err := s.info(r, id); err == nil {
			if whole, _ := s.wholeOf(info); whole != "" {
				fail(http.StatusLengthRequired, "a part written in place takes an HTTP/1.1 PATCH with a Content-Length, or a compressed one")
				return
			}
		}
		s.handler.ServeHTTP(w, r)
		return
	}
	if n <= rawCopyMax {
		s.patchCopied(w, r, id, offset)
		return
	}
	// Another request for this upload (a HEAD or PATCH from an agent that
	// resumes) asks the holder to let go: the body read is ended at once,
	// the bytes that arrived are kept.
	var in interrupter
	t, unlock := s.beginPatch(r, id, offset, n, &in, fail)
	if t == nil {
		return
	}
	defer unlock()
	answer := w.Header().Clone() // what a hijacked answer carries
	hconn, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Close()
		fail(http.StatusInternalServerError, err.Error())
		return
	}
	defer hconn.Close()
	hconn.SetDeadline(time.Time{}) // the server's deadlines; the watchdog rules here
	in.arm(func() { hconn.SetReadDeadline(time.Now()) })
	// A body that stops moving (a client gone silent, a half-open link)
	// must not hold the upload's lock for ever.
	stop := s.watchStall(t.position, in.interrupt)
	defer stop()
	// The SHA-256 is computed as the pieces land (see digest.go); without
	// a hasher the transfer step reads the file instead.
	hs, _ := s.startHasher(id, t.path, t.base, offset)
	// Bytes the server already buffered, then the rest straight from the
	// socket (os.File.ReadFrom splices from a TCP connection), in pieces
	// synced in the background as soon as each is in the page cache.
	sy := startSyncer(t.File)
	got, err := io.CopyN(t.File, brw.Reader, min(int64(brw.Reader.Buffered()), n))
	t.landed(hs, offset, got)
	for err == nil && got < n {
		var k int64
		k, err = t.ReadFrom(io.LimitReader(hconn, min(n-got, writebackPiece)))
		sy.poke()
		t.landed(hs, offset+got, k)
		got += k
		if k == 0 && err == nil {
			err = io.ErrUnexpectedEOF
		}
	}
	// Acknowledge only what is on disk: the offset we answer is a promise
	// the agent relies on after a power cut. (Bytes of a body cut short
	// are synced too, so a part written in place keeps them.)
	if cerr := s.settle(id, hs, sy, t, offset+got); err == nil {
		err = cerr
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err == nil && got < n {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		if isNoSpace(err) {
			// Say so instead of dropping the connection; the bytes that
			// arrived are kept and the client resumes when there is room.
			slog.Error("upload: disk full", "upload", id, "dir", s.dir, "error", err)
			fmt.Fprintf(brw, "HTTP/1.1 507 Insufficient Storage\r\nTus-Resumable: 1.0.0\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\ndisk full at the server: %v\n", err)
			brw.Flush()
			// Close gracefully: a close with the rest of the body unread
			// would reset the connection and lose the answer.
			if tc, ok := hconn.(*net.TCPConn); ok {
				tc.CloseWrite()
				hconn.SetReadDeadline(time.Now().Add(2 * time.Second))
				io.Copy(io.Discard, io.LimitReader(brw, n-got))
			}
		}
		// The bytes that arrived are kept; the client asks for the offset
		// and resumes.
		return
	}
	status := doneStatus(answer)
	answer.Set("Tus-Resumable", "1.0.0")
	answer.Set("Upload-Offset", strconv.FormatInt(offset+got, 10))
	answer.Set("Connection", "close")
	fmt.Fprintf(brw, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	answer.Write(brw)
	brw.WriteString("\r\n")
	brw.Flush()
}

// rawCopyMax is the largest raw body read through the HTTP server (copied,
// 0.25 ms per MB) instead of spliced from the hijacked socket: a hijacked
// connection is closed after its answer, so the agent's next file paid a
// new connection, 1 round trip of the link, 2-3 with TLS (60-90 ms on a
// 30 ms link), which a small file's copy never costs.
const rawCopyMax = 8 << 20

// patchCopied writes a raw body of at most rawCopyMax bytes at offset of
// upload id as patchRaw does (the same checks, hash, durability and
// answers), reading it through the HTTP server, which keeps the
// connection for the client's next request.
func (s *Server) patchCopied(w http.ResponseWriter, r *http.Request, id string, offset int64) {
	fail := tusError(w)
	n := r.ContentLength
	t, _, finish := s.beginRead(w, r, id, offset, n, fail)
	if t == nil {
		return
	}
	defer finish()
	hs, _ := s.startHasher(id, t.path, t.base, offset)
	sy := startSyncer(t.File)
	bp := decodeBufs.Get().(*[]byte)
	defer decodeBufs.Put(bp)
	buf := *bp
	var got int64
	var err error
	for err == nil && got < n {
		k, rerr := io.ReadFull(r.Body, buf[:min(int64(len(buf)), n-got)])
		if k > 0 {
			wk, werr := t.Write(buf[:k])
			t.landed(hs, offset+got, int64(wk))
			got += int64(wk)
			err = werr
		}
		if err == nil && rerr != nil {
			err = rerr
		}
	}
	if cerr := s.settle(id, hs, sy, t, offset+got); err == nil {
		err = cerr
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	w.Header().Set("Tus-Resumable", "1.0.0")
	switch {
	case err == nil:
		w.Header().Set("Upload-Offset", strconv.FormatInt(offset+got, 10))
		w.WriteHeader(doneStatus(w.Header()))
	case isNoSpace(err):
		slog.Error("upload: disk full", "upload", id, "dir", s.dir, "error", err)
		fail(http.StatusInsufficientStorage, fmt.Sprintf("disk full at the server: %v", err))
	default:
		// A body cut short: the bytes that arrived are kept and the
		// client resumes from the offset it asks for.
		fail(http.StatusBadRequest, fmt.Sprintf("body ended: %v (%d bytes kept)", err, got))
	}
}

// beginRead begins a PATCH whose body is read through the HTTP server
// (not hijacked): beginPatch, the server's read deadline lifted, and the
// read ended by another request for the upload or a body that stalls.
// finish lets go of the upload; t is nil when the PATCH was refused.
func (s *Server) beginRead(w http.ResponseWriter, r *http.Request, id string, offset, n int64, fail func(int, string)) (t *target, rc *http.ResponseController, finish func()) {
	var in interrupter
	t, unlock := s.beginPatch(r, id, offset, n, &in, fail)
	if t == nil {
		return nil, nil, nil
	}
	rc = http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{}) // the server's deadlines; the watchdog rules here
	in.arm(func() { rc.SetReadDeadline(time.Now()) })
	stop := s.watchStall(t.position, in.interrupt)
	return t, rc, func() {
		stop()
		unlock()
	}
}

// settle makes the bytes a PATCH wrote durable: it waits for the
// background sync under way (sy's), then syncs them (t.commit) while the
// state of its hasher is saved (the hasher's last pieces, 0.5 ms for a
// 1 MB body, ran before the sync, which is most of a small upload's wait),
// and returns once both are done, with the sync's error.
func (s *Server) settle(id string, hs *hasher, sy *syncer, t *target, end int64) error {
	saved := make(chan struct{})
	go func() {
		s.saveHash(id, hs)
		close(saved)
	}()
	sy.stop()
	err := t.commit(end)
	<-saved
	return err
}

// tusError returns how a PATCH (or a creation with upload) answers an
// error: the status and a message, with the tus version.
func tusError(w http.ResponseWriter) func(status int, msg string) {
	return func(status int, msg string) {
		w.Header().Set("Tus-Resumable", "1.0.0")
		http.Error(w, msg, status)
	}
}

// doneStatus is the status of a body written in full: 201 for a creation
// with upload (its answer has the Location already), else 204.
func doneStatus(answer http.Header) int {
	if answer.Get("Location") != "" {
		return http.StatusCreated
	}
	return http.StatusNoContent
}

// spliceable reports whether r's raw body can go to a file by splice(2):
// an HTTP/1.1 request with a Content-Length whose connection can be taken.
func spliceable(w http.ResponseWriter, r *http.Request) bool {
	_, hijackable := w.(http.Hijacker)
	return r.ContentLength >= 0 && r.ProtoMajor == 1 && hijackable
}

// watchStall calls abort when position has not moved for the stall
// timeout; the returned function stops watching.
func (s *Server) watchStall(position func() int64, abort func()) (stop func()) {
	limit := cmp.Or(s.cfg.StallTimeout, 2*time.Minute)
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(max(limit/8, 10*time.Millisecond))
		defer tick.Stop()
		var last int64 = -1
		moved := time.Now()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if p := position(); p != last {
				last, moved = p, time.Now()
				continue
			}
			if time.Since(moved) >= limit {
				slog.Warn("upload stalled: closing its request", "idle", time.Since(moved).Round(time.Second))
				abort()
				return
			}
		}
	}()
	return func() { close(done) }
}

// info reads an upload's state for a PATCH, with the status to answer
// when it cannot: 404 for an upload that does not exist, 403 for the
// final upload of a concatenation (it is made by the server, never
// written).
func (s *Server) info(r *http.Request, id string) (handler.FileInfo, int, error) {
	up, err := s.store.GetUpload(r.Context(), id)
	if err != nil {
		if errors.Is(err, handler.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return handler.FileInfo{}, http.StatusNotFound, errors.New("upload not found")
		}
		return handler.FileInfo{}, http.StatusInternalServerError, err
	}
	info, err := up.GetInfo(r.Context())
	if err != nil {
		return handler.FileInfo{}, http.StatusInternalServerError, err
	}
	if info.IsFinal {
		return info, http.StatusForbidden, errors.New("the final upload of a concatenation is not written to")
	}
	return info, 0, nil
}

// interrupter ends a PATCH's body read when another request asks for its
// upload; the way to end it is armed once the read exists, and an
// interruption asked for before that takes effect then.
type interrupter struct {
	mu    sync.Mutex
	asked bool
	stop  func()
}

func (in *interrupter) interrupt() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.asked = true
	if in.stop != nil {
		in.stop()
	}
}

func (in *interrupter) arm(stop func()) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.stop = stop
	if in.asked {
		stop()
	}
}

// beginPatch takes the upload's lock for a PATCH of n bytes at offset
// (another request asking for the upload calls in.interrupt), checks the
// offset and the length against the stored upload and opens where it is
// written (see openTarget). On failure it answers through fail and
// returns a nil target.
func (s *Server) beginPatch(r *http.Request, id string, offset, n int64, in *interrupter, fail func(int, string)) (t *target, unlock func()) {
	lock, err := s.locker.NewLock(id)
	if err != nil {
		fail(http.StatusInternalServerError, err.Error())
		return nil, nil
	}
	if err := lock.Lock(r.Context(), in.interrupt); err != nil {
		fail(http.StatusLocked, "upload is locked by another request")
		return nil, nil
	}
	// The bytes of an earlier PATCH synced first (see journal.go).
	if err := s.settled(id); err != nil {
		lock.Unlock()
		fail(http.StatusInternalServerError, err.Error())
		return nil, nil
	}
	info, status, err := s.info(r, id)
	if err == nil && offset != info.Offset {
		status, err = http.StatusConflict, fmt.Errorf("mismatched offset: the server has %d bytes", info.Offset)
	}
	if err == nil && offset+n > info.Size {
		status, err = http.StatusRequestEntityTooLarge, fmt.Errorf("%d bytes at offset %d exceed the upload length %d", n, offset, info.Size)
	}
	if err == nil {
		if t, err = s.openTarget(info, offset); err != nil {
			status = http.StatusInternalServerError
		}
	}
	if err != nil {
		lock.Unlock()
		fail(status, err.Error())
		return nil, nil
	}
	return t, func() { lock.Unlock() }
}

package tusserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// Small compressed bodies made durable by their journal. A PATCH is
// answered once its bytes are on disk (the offset it answers is a promise
// the agent relies on after a power cut), and for a small body that
// decodes to many times its size, syncing the decoded bytes is most of the
// transfer: on the development VM 1 MB takes 2.4 ms to sync, the 28 KB it
// came in over the wire 0.4 ms. So such a body, as it arrived, is written
// to <id>.journal with the offset it starts at and the length it decodes
// to, and synced, as soon as it is all in (while it is still being
// decoded: readAhead); the answer waits for that and for the decoding (a
// body that fails to decode has its journal removed); the decoded bytes
// (already in the upload's file, in the page cache) are synced in the
// background and the journal removed after. Whatever takes an upload's bytes as final
// waits for that sync (settled: Get, Digest, Remove, the next PATCH). New
// replays every journal in the directory (left by a power cut): decoded,
// written at its offset, synced, removed; one it could not replay, or
// whose background sync failed, is replayed by the next reader of its
// upload. A journal that does not decode to its length (zstd's frame
// checksum, which the agent's encoder writes, tells one cut short) was
// never acknowledged, and is not replayed.
// Where replicas share the directory (Config.Locker set) no journal is
// written: one replica could replay and remove a journal another had
// just written for its next PATCH, and a replica on another host must
// find the decoded bytes on the shared file system once the PATCH is
// answered. (Journals left from before are still replayed.)

// journalMax is the largest body kept for a journal (a larger one comes
// from a file whose background syncs keep up with the network).
const journalMax = 1 << 20

// journalDecodedMax is the most a journalled body may decode to (a
// replay holds it in memory; a larger file's background syncs keep up
// with the network anyway).
const journalDecodedMax = 64 << 20

// journalGain is how many times smaller than its decoded bytes a body
// must be to be journalled instead of syncing those bytes.
const journalGain = 4

// journalMagic starts a journal; then the offset and the decoded length
// (big-endian int64s), then the body as it arrived.
const journalMagic = "picoflow-journal 1\n"

func (s *Server) journalPath(id string) string { return filepath.Join(s.dir, id+".journal") }

// readAhead is a compressed PATCH's body as its decoder reads it. Where
// the upload may be journalled (journal set), a goroutine reads the body
// ahead of the decoder into a buffer of journalMax bytes; when the whole
// body arrived within it and is worth a journal (it declared it decodes
// to n), that goroutine writes and syncs the journal while the decoder is
// still at work (following the decoding, the sync was 0.7-1.4 ms of a
// 1 MB file's 9 ms on the development VM). A larger body goes on to the
// decoder as it arrives. It remembers the body's last error, which tells a
// body cut short from one that does not decode.
type readAhead struct {
	src io.Reader
	err error // the body's last error (the decoder's side)

	mu      sync.Mutex
	more    *sync.Cond
	buf     []byte // read ahead (cap journalMax+1)
	pos     int    // how much of buf the decoder has read
	stopped bool   // the goroutine reads no more: the body ended (ahead) or buf is full
	ahead   error  // the body's error where it ended within buf

	ended    chan struct{} // closed when the goroutine returns
	written  bool          // a journal was written (writeErr: how that went)
	writeErr error         // the journal's write and sync
}

// readAheadBufs hold bodies read ahead (journalMax+1 bytes each).
var readAheadBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, journalMax+1)
	return &b
}}

// newReadAhead reads src ahead when journal is not nil: journal is given
// the whole body, if it arrives within journalMax bytes, and writes its
// journal if it is worth one (returning whether it did; the write's error
// goes to writeErr).
func newReadAhead(src io.Reader, journal func(kept []byte) (bool, error)) *readAhead {
	ra := &readAhead{src: src, ended: make(chan struct{})}
	if journal == nil {
		close(ra.ended)
		ra.stopped = true
		return ra
	}
	ra.more = sync.NewCond(&ra.mu)
	bp := readAheadBufs.Get().(*[]byte)
	ra.buf = (*bp)[:0]
	go func() {
		defer close(ra.ended)
		for {
			k, err := src.Read(ra.buf[len(ra.buf):cap(ra.buf)])
			ra.mu.Lock()
			ra.buf = ra.buf[:len(ra.buf)+k]
			full := len(ra.buf) == cap(ra.buf)
			if err != nil || full {
				ra.stopped, ra.ahead = true, err
			}
			ra.more.Broadcast()
			ra.mu.Unlock()
			if err == io.EOF && !full {
				// The whole body: buf is not written any more.
				ra.written, ra.writeErr = journal(ra.buf)
				return
			}
			if err != nil || full {
				return
			}
		}
	}()
	return ra
}

func (ra *readAhead) Read(p []byte) (int, error) {
	if ra.more != nil {
		ra.mu.Lock()
		for ra.pos == len(ra.buf) && !ra.stopped {
			ra.more.Wait()
		}
		if ra.pos < len(ra.buf) {
			k := copy(p, ra.buf[ra.pos:])
			ra.pos += k
			ra.mu.Unlock()
			return k, nil
		}
		err := ra.ahead
		ra.mu.Unlock()
		if err != nil {
			ra.err = err
			return 0, err
		}
		// buf is full: the rest as it arrives.
	}
	k, err := ra.src.Read(p)
	if err != nil {
		ra.err = err
	}
	return k, err
}

// done waits for the goroutine (interrupt stops a read it is blocked in)
// and returns whether a journal was written, and its error.
func (ra *readAhead) done(interrupt func()) (bool, error) {
	ra.mu.Lock()
	reading := !ra.stopped
	ra.mu.Unlock()
	if reading {
		interrupt()
	}
	<-ra.ended
	if ra.more != nil {
		b := ra.buf[:0]
		ra.buf = nil
		readAheadBufs.Put(&b)
	}
	return ra.written, ra.writeErr
}

// Journalled reports whether a compressed PATCH body of body bytes that
// decodes to decoded bytes is made durable by its journal (the answer
// waits for body bytes to be synced, not decoded).
func Journalled(decoded, body int64) bool {
	return body <= journalMax && decoded <= journalDecodedMax && body*journalGain <= decoded
}

// writeJournal makes the journal of a body (kept) that decoded to n bytes
// at offset of upload id durable.
func (s *Server) writeJournal(id string, offset, n int64, kept []byte) error {
	f, err := os.OpenFile(s.journalPath(id), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	head := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64([]byte(journalMagic), uint64(offset)), uint64(n))
	_, err = f.Write(append(head, kept...))
	if err == nil {
		// (On ext4, as for an upload's data file, the sync of a new
		// file commits its directory entry too.)
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// pendingSyncs are the background syncs of journalled uploads, by ID,
// and the uploads whose journal a reader must replay (left: one the start
// could not replay, or whose background sync failed); for any other
// upload a reader finds no journal to replay, so it does not look for one.
type pendingSyncs struct {
	mu   sync.Mutex
	by   map[string]chan struct{}
	left map[string]bool
	wg   sync.WaitGroup
}

// add registers a background sync of upload id; end, its end.
func (p *pendingSyncs) add(id string) chan struct{} {
	done := make(chan struct{})
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.by == nil {
		p.by = map[string]chan struct{}{}
	}
	p.by[id] = done
	p.wg.Add(1)
	return done
}

// leave marks upload id's journal as one a reader must replay (true) or
// not (false).
func (p *pendingSyncs) leave(id string, left bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !left {
		delete(p.left, id)
		return
	}
	if p.left == nil {
		p.left = map[string]bool{}
	}
	p.left[id] = true
}

func (p *pendingSyncs) end(id string, done chan struct{}) {
	p.mu.Lock()
	delete(p.by, id)
	p.mu.Unlock()
	close(done)
	p.wg.Done()
}

// syncLater leaves to the background what a journalled PATCH (its body
// made durable by its journal) still owes: saving the hash's state
// (save), syncing t (the upload id's own file, written to its end),
// closing it and removing the journal; the PATCH is answered meanwhile,
// and a reader of the upload waits (settled).
func (s *Server) syncLater(id string, sy *syncer, t *target, save func()) {
	done := s.pending.add(id)
	hold := backgroundSyncHold.Load()
	go func() {
		defer s.pending.end(id, done)
		save()
		if hold != nil {
			<-*hold
		}
		sy.stop()
		err := errors.Join(t.Sync(), t.Close())
		if err == nil {
			if err = os.Remove(s.journalPath(id)); errors.Is(err, os.ErrNotExist) {
				err = nil // gone already
			}
		}
		if err != nil {
			// The journal stays and is replayed by the next reader.
			slog.Error("upload: background sync", "upload", id, "error", err)
			s.pending.leave(id, true)
		}
	}()
}

// backgroundSyncHold, when set, holds the background syncs scheduled
// meanwhile until its channel is closed (tests: a power cut before them).
var backgroundSyncHold atomic.Pointer[chan struct{}]

// settled waits for a background sync of upload id and replays a journal
// of it that is left.
func (s *Server) settled(id string) error {
	p := &s.pending
	p.mu.Lock()
	done := p.by[id]
	p.mu.Unlock()
	if done != nil {
		<-done
	}
	p.mu.Lock()
	left := p.left[id]
	p.mu.Unlock()
	if !left {
		return nil
	}
	if err := s.replay(id); err != nil {
		return err
	}
	p.leave(id, false)
	return nil
}

// Close waits for the background syncs under way.
func (s *Server) Close() {
	s.pending.wg.Wait()
}

// replay writes a journal's body, decoded, into its upload's file at its
// offset, syncs the file and removes the journal. No journal, or one that
// does not decode to its length (cut short before it was synced, so its
// PATCH was never answered): nothing to do.
func (s *Server) replay(id string) error {
	path := s.journalPath(id)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("replay journal of upload %s: %w", id, err)
	}
	data, offset, err := decodeJournal(b)
	if err != nil {
		// Cut short by a crash before it was synced (its PATCH never
		// answered): left alone (Remove takes it with the upload).
		slog.Debug("upload: journal not replayed", "upload", id, "error", err)
		return nil
	}
	f, err := os.OpenFile(filepath.Join(s.dir, id), os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		// The upload was removed (its journal goes with it).
		return nil
	}
	if err != nil {
		return fmt.Errorf("replay journal of upload %s: %w", id, err)
	}
	_, err = f.WriteAt(data, offset)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("replay journal of upload %s: %w", id, err)
	}
	slog.Info("upload: journal replayed", "upload", id, "offset", offset, "bytes", len(data))
	return os.Remove(path)
}

// decodeJournal returns a journal's decoded body and where it goes.
func decodeJournal(b []byte) (data []byte, offset int64, err error) {
	rest, ok := bytes.CutPrefix(b, []byte(journalMagic))
	if !ok || len(rest) < 16 {
		return nil, 0, errors.New("no journal header")
	}
	offset, n := int64(binary.BigEndian.Uint64(rest)), int64(binary.BigEndian.Uint64(rest[8:]))
	if offset < 0 || n < 0 || n > journalDecodedMax {
		return nil, 0, fmt.Errorf("journal header: offset %d, length %d", offset, n)
	}
	dec := decoders.Get().(*zstd.Decoder)
	defer func() {
		dec.Reset(nil)
		decoders.Put(dec)
	}()
	if err := dec.Reset(bytes.NewReader(rest[16:])); err != nil {
		return nil, 0, err
	}
	data = make([]byte, n)
	if _, err := io.ReadFull(dec, data); err != nil {
		return nil, 0, fmt.Errorf("journal body: %w", err)
	}
	// The end of the body, after the last frame's checksum.
	if k, err := dec.Read(make([]byte, 1)); k != 0 || err != io.EOF {
		return nil, 0, fmt.Errorf("journal body: more than its length, or its end not valid (%v)", err)
	}
	return data, offset, nil
}

// replayAll replays every journal in the directory (at start).
func (s *Server) replayAll() error {
	names, err := filepath.Glob(filepath.Join(s.dir, "*.journal"))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range names {
		id := filepath.Base(p[:len(p)-len(".journal")])
		if err := s.replay(id); err != nil {
			s.pending.leave(id, true)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

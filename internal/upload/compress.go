package upload

import (
	"context"
	"encoding/binary"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Compression on the wire. A server that takes zstd says so in every
// response (HeaderAcceptEncoding); the client then compresses a file's
// PATCH bodies when that makes the transfer faster: it samples the file
// (how well it compresses, how fast one thread compresses it), compares
// with the rate the link carries raw bytes at (measured on a raw first
// piece of the file, or remembered from earlier uploads, and never more
// than the rate cap), and compresses only when the compressed stream
// would arrive sooner. The body is a series of zstd frames of one chunk
// each, compressed by a few threads; a chunk that does not shrink, or
// that would keep the link waiting because every thread is busy, goes as
// a stored (raw) frame, so compression never holds the transfer back.
// The SHA-256 and the stored file are those of the original bytes.

// Header names of the compression extension.
const (
	// HeaderAcceptEncoding lists the encodings a server decodes in PATCH
	// bodies ("zstd").
	HeaderAcceptEncoding = "Upload-Accept-Encoding"
	// HeaderDecodedLength is the number of upload bytes a compressed
	// PATCH body decodes to.
	HeaderDecodedLength = "Upload-Decoded-Length"
	// HeaderCreateWithBody says a server takes the first bytes of an
	// upload in the POST that creates it (tus's creation-with-upload),
	// raw or in the encodings listed ("zstd").
	HeaderCreateWithBody = "Upload-Create-With-Body"
)

// CompressMode says when a client compresses.
type CompressMode int

// Compression modes.
const (
	// CompressAuto compresses when the file compresses and the link is
	// slower than the compressor (the default).
	CompressAuto CompressMode = iota
	// CompressNever always sends raw bytes.
	CompressNever
	// CompressAlways compresses whenever the server takes it (tests).
	CompressAlways
)

const (
	probeBytes = 16 << 20 // the raw first piece that measures the link
	// worthRatio: a file whose samples do not shrink below this goes raw.
	worthRatio = 0.9
	// noShrink: data whose glance does not shrink below this does not
	// compress at all (one compression of the glance tells).
	noShrink = 0.97
)

// WireStats says how a client's uploads went over the wire.
type WireStats struct {
	// Raw and Wire are upload bytes sent and the bytes that carried them.
	Raw, Wire int64
	// LinkRate is the last measured raw rate (bytes/s), 0 if unknown.
	LinkRate float64
	// Join is the time spent waiting for servers to join parallel parts
	// into files (the final uploads' creation).
	Join time.Duration
}

// compression is a client's view of the server and the link.
type compression struct {
	mu         sync.Mutex
	serverZstd bool
	noted      bool    // serverZstd was read from a response
	createBody bool    // the server takes bytes in a creation
	linkRate   float64 // bytes/s of raw PATCHes, EWMA; 0: not measured
	linkAt     time.Time
	raw, wire  atomic.Int64
	join       atomic.Int64 // nanoseconds
	// ownLimiter paces a client configured by MaxBytesPerSecond.
	ownLimiter *Limiter
	slots      chan struct{}
	probe      linkProbe
	// streams is how many PATCHes of the client are sending at once.
	streams atomic.Int32
}

// threadSlots is the semaphore of the client's compression threads.
func (c *compression) threadSlots(n int) chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slots == nil {
		c.slots = make(chan struct{}, n)
	}
	return c.slots
}

func (c *compression) noteServer(h interface{ Get(string) string }) {
	zstdOK := false
	for enc := range strings.SplitSeq(h.Get(HeaderAcceptEncoding), ",") {
		zstdOK = zstdOK || strings.TrimSpace(enc) == "zstd"
	}
	c.mu.Lock()
	c.serverZstd, c.noted, c.createBody = zstdOK, true, supportsBody(h)
	c.mu.Unlock()
}

// serverKnown reports whether a response told the server's encodings.
func (c *compression) serverKnown() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.noted
}

// sentRaw records n upload bytes sent raw in a request that took d.
func (c *compression) sentRaw(n int64, d time.Duration) {
	c.observe(n, d)
	c.raw.Add(n)
	c.wire.Add(n)
}

// observe records a raw PATCH of n bytes that took d.
func (c *compression) observe(n int64, d time.Duration) {
	if n < 4<<20 || d <= 0 {
		return
	}
	r := float64(n) / d.Seconds()
	c.mu.Lock()
	if c.linkRate == 0 || time.Since(c.linkAt) > 10*time.Minute {
		c.linkRate = r
	} else {
		c.linkRate = 0.5*c.linkRate + 0.5*r
	}
	c.linkAt = time.Now()
	c.mu.Unlock()
}

func (c *compression) link() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.linkAt) > 10*time.Minute {
		return 0
	}
	return c.linkRate
}

// Stats returns how the client's uploads went over the wire.
func (c *Client) Stats() WireStats {
	return WireStats{Raw: c.comp.raw.Load(), Wire: c.comp.wire.Load(), LinkRate: c.comp.link(), Join: time.Duration(c.comp.join.Load())}
}

// plan is how one file goes: raw or compressed, and whether a raw probe
// must measure the link first.
type plan struct {
	compress bool
	probe    bool
	ratio    float64 // sampled compressed/raw
	speed    float64 // bytes/s one thread compresses
	// head is the first frame of the bytes to send, compressed by the
	// sampling: a compressed body starts with it.
	head []byte
}

// frameSize is the bytes per zstd frame when n bytes are to go: a small
// file in small frames, so its first is on the wire sooner.
func frameSize(n int64) int64 {
	if n < 8<<20 {
		return 256 << 10
	}
	return 1 << 20
}

func (c *Client) threads() int {
	if c.CompressThreads > 0 {
		return c.CompressThreads
	}
	return max(1, runtime.NumCPU()/4)
}

// planFile decides how the bytes [off, size) of f go.
func (c *Client) planFile(f io.ReaderAt, off, size int64) plan {
	c.comp.mu.Lock()
	zstdOK := c.comp.serverZstd
	c.comp.mu.Unlock()
	if c.Compress == CompressNever || !zstdOK || size-off < 64<<10 {
		return plan{}
	}
	link := c.comp.link()
	if c.Compress == CompressAuto {
		// Even compressed to nothing in no time, could it win?
		need := c.ratioNeeded(link, size-off)
		if need <= 0 {
			return plan{}
		}
		// Data that does not shrink in a glance (16 KiB from the middle)
		// goes raw at once (the sample of a large file costs ~1 % of its
		// transfer).
		r, speed := glance(f, off, size)
		if r > need+0.1 || r > noShrink {
			return plan{ratio: r}
		}
		if size-off < 8<<20 {
			// The glance's speed (the faster of two on 16 KiB in the
			// cache) is one the whole file does not beat: 0.9-1.3x that
			// of the real files in ../shared/data that compress slowly,
			// up to 8x for sparse ones (the middle of a spectrum image
			// all zeros). At that speed, the first frame compressed by
			// the sample, would compression still lose? Then the sample
			// is not worth its time either (a 200 KiB file is all one
			// frame: its sample is the whole compression).
			if speed > 0 && !c.worthIt(plan{ratio: r, speed: speed}, link, size-off) {
				return plan{ratio: r, speed: speed}
			}
			// One that shrinks three times more than it needs to, and
			// wins at the glance's speed over 2.5 (the most the glance
			// was seen to overrate a file), goes compressed without a
			// sample: the sample (0.8 ms for a 1 MB file's first frame)
			// would hold back the request, while the first frame is
			// compressed as the connection opens.
			if speed > 0 && r*3 <= need && c.worthIt(plan{ratio: r, speed: speed / 2.5}, link, size-off) {
				return plan{compress: true, ratio: r, speed: speed / 2.5}
			}
		}
	}
	var p plan
	p.ratio, p.speed, p.head = sample(f, off, size)
	if c.Compress == CompressAlways {
		p.compress = true
		return p
	}
	if p.ratio > worthRatio {
		return p
	}
	if link == 0 && size-off > 4*probeBytes {
		p.probe = true
		return p
	}
	p.compress = c.worthIt(p, link, size-off)
	return p
}

// effectiveLink is the raw rate the plan assumes for a link measured at
// link (0: not measured, taken as 1 Gbit/s): no more than the rate cap,
// and, as streams sending at once share the threads, the link each
// measured times their number.
func (c *Client) effectiveLink(link float64) float64 {
	if lim := c.limiter(); lim != nil && lim.Rate() > 0 && (link == 0 || lim.Rate() < link) {
		link = lim.Rate()
	}
	if link == 0 {
		link = assumedLink
	}
	return link * float64(max(1, c.comp.streams.Load()))
}

// ratioNeeded is the compressed/raw ratio size bytes must reach to go
// faster compressed, were compressing free (<= 0: none will do).
func (c *Client) ratioNeeded(link float64, size int64) float64 {
	raw := float64(size) / c.effectiveLink(link)
	return min(worthRatio, 0.9-compressedPatchCost.Seconds()/raw)
}

// worthIt reports whether compressing size bytes beats sending them raw
// on a link of the given raw rate (0: not measured, taken as 1 Gbit/s).
func (c *Client) worthIt(p plan, link float64, size int64) bool {
	if p.speed <= 0 || p.ratio > worthRatio {
		return false
	}
	link = c.effectiveLink(link)
	speed := p.speed * inSituSpeed
	s := float64(size)
	raw := s / link
	// The compressed stream moves at the slower of the compressor and the
	// link carrying compressed bytes; the first frame was compressed by
	// the sampling (else the stream waits for it).
	first := float64(min(size, frameSize(size)))
	wait := 0.0
	if p.head == nil {
		wait = first / speed
	}
	compressed := wait + max((s-first)/(speed*float64(c.threads())), p.ratio*s/link)
	return compressed+compressedPatchCost.Seconds() < 0.9*raw
}

// inSituSpeed is the share of a sample's compression speed a thread keeps
// while the upload runs (its reads, the TLS or TCP stack and the
// acquisition software share the CPUs): 0.74 measured on the 91 MB
// spectrum image, 177 MB/s during the upload against 240 MB/s alone. A
// 2.6 MB spectrum sampled at 159 MB/s, a little faster than a 1 Gbit/s
// link, went compressed and arrived 0.8x as fast as raw.
const inSituSpeed = 0.75

// compressedPatchCost is what a compressed PATCH costs beyond its bytes
// and beyond what a raw one costs (a chunked body, the decoder at the
// server, the pipeline's goroutines): 0.4-0.7 ms, measured with files of
// zeros (96-768 KiB: compressed in no time) against the floor of a
// 1-byte upload, on the kept connection across an emulated 1 Gbit/s link
// with 1 ms RTT (picoflow bench transfer --link); it was 2 ms before the
// server's journal. A file whose compression saves less goes raw.
const compressedPatchCost = 750 * time.Microsecond

// assumedLink is the rate taken for a link not measured yet: a facility's
// 1 Gbit/s.
const assumedLink = 125e6

// sample compresses the first frame of [off, size) and up to 7 more
// pieces of 256-512 KiB spread over it (at most 4 MiB, or a 16th of a
// large file), and returns the compressed/raw ratio, one thread's speed in
// bytes/s and the first frame compressed. Pieces smaller than that time
// the encoder's set-up more than its speed.
func sample(f io.ReaderAt, off, size int64) (ratio, speed float64, head []byte) {
	enc := encoders.Get()
	defer encoders.Put(enc)
	frame := min(frameSize(size-off), size-off)
	budget := min(4<<20, max(frame, (size-off)/16))
	piece := max(256<<10, budget/8)
	n := min(8, max(1, budget/piece))
	buf := make([]byte, max(frame, piece))
	// The encoder's first call sets up its tables: not part of the speed.
	enc.EncodeAll(buf[:4<<10], nil)
	var in, comp, bulkIn, bulkComp int64
	var spent time.Duration
	var speeds []float64 // of each piece
	for i := range n {
		at, k := off, frame
		if i > 0 {
			at = off + frame + (size-off-frame-piece)*i/max(1, n-1)
			if at < off+frame || at+piece > size {
				break
			}
			k = piece
		}
		got, err := f.ReadAt(buf[:k], at)
		if int64(got) < k && err != nil {
			break
		}
		t0 := time.Now()
		out := enc.EncodeAll(buf[:k], nil)
		took := time.Since(t0)
		spent += took
		speeds = append(speeds, float64(k)/max(took.Seconds(), 1e-9))
		if i == 0 {
			head = out
		}
		in += k
		comp += int64(len(out))
		if i > 0 {
			bulkIn += k
			bulkComp += int64(len(out))
		}
	}
	if in == 0 {
		return 1, 0, nil
	}
	if len(head) >= int(frame) {
		head = nil // it does not shrink
	}
	speed = float64(in) / max(spent.Seconds(), 1e-9)
	if len(speeds) >= 3 {
		// The median piece's: a piece or two slowed by the thread being
		// preempted (the 91 MB spectrum image sampled at 150-250 MB/s
		// from run to run) does not decide.
		speed = median(speeds[1:])
	}
	if bulkIn > 0 {
		// The ratio of the pieces spread over the file: its first frame
		// is mostly the HDF5 header, which shrinks where the data may not.
		return float64(bulkComp) / float64(bulkIn), speed, head
	}
	return float64(comp) / float64(in), speed, head
}

// glance is the compressed/raw ratio of 16 KiB from the middle of
// [off, size), and the speed it was compressed at (bytes/s). It is paid
// by every file, raw ones too: 32 KiB compressed three times took 0.35 ms
// of a 0.6 MB image's 8.3 ms upload (0.69 ms for a 2.6 MB spectrum's 26),
// both then sent raw; 16 KiB twice gives the real files in
// ../shared/data the same ratios within 0.01 and speeds within 15 %, in
// 0.1-0.2 ms.
func glance(f io.ReaderAt, off, size int64) (ratio, speed float64) {
	k := min(16<<10, size-off)
	buf := make([]byte, k)
	at := off + (size-off-k)/2
	if n, err := f.ReadAt(buf, at); int64(n) < k && err != nil {
		return 1, 0
	}
	enc := encoders.Get()
	defer encoders.Put(enc)
	// The faster of two: one is a fraction of a millisecond, and a
	// thread preempted during it (the server's own work, on a busy PC)
	// would send a file that shrinks 30-fold raw. Data that does not
	// shrink at all is told by one.
	out := make([]byte, 0, outBound(int(k)))
	var n int
	took := time.Duration(math.MaxInt64)
	for range 2 {
		t0 := time.Now()
		n = len(enc.EncodeAll(buf, out[:0]))
		took = min(took, time.Since(t0))
		if float64(n) > noShrink*float64(k) {
			break
		}
	}
	return float64(n) / float64(k), float64(k) / max(took.Seconds(), 1e-9)
}

// encoders are reused: setting one up (1.6 ms) costs more than
// compressing a small file (0.1 ms for 256 KiB). A sync.Pool drops what
// it holds at every other garbage collection, so an agent whose files
// come minutes apart set one up for each (and the bench's uploads of 1 MB
// files now and then); these are kept, a few at most.
var encoders = keeper[*zstd.Encoder]{make: newEncoder, free: make(chan *zstd.Encoder, 4)}

// keeper keeps values for reuse: up to free's capacity, for ever.
type keeper[T any] struct {
	make func() T
	free chan T
}

// Get returns a kept value, or a new one.
func (k *keeper[T]) Get() T {
	select {
	case v := <-k.free:
		return v
	default:
		return k.make()
	}
}

// Put keeps v if there is room.
func (k *keeper[T]) Put(v T) {
	select {
	case k.free <- v:
	default:
	}
}

func newEncoder() *zstd.Encoder {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true),
		// Counts (uint16 channel numbers, pixel values) shrink by their
		// literals alone; the fastest level skips those by default.
		zstd.WithAllLitEntropyCompression(true))
	if err != nil {
		panic(err)
	}
	return enc
}

// appendStored appends src as a zstd frame of stored (raw) blocks: no
// compression work, decoded by any zstd decoder.
func appendStored(dst, src []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, 0xFD2FB528)
	// Frame header: no content size, no checksum, no dictionary; a 128 KiB
	// window (exponent 17-10).
	dst = append(dst, 0x00, 7<<3)
	const block = 128 << 10
	for len(src) > 0 {
		k := min(len(src), block)
		h := uint32(k) << 3 // type 0: raw
		if k == len(src) {
			h |= 1 // last block
		}
		dst = append(dst, byte(h), byte(h>>8), byte(h>>16))
		dst = append(dst, src[:k]...)
		src = src[k:]
	}
	return dst
}

// chunk is one frame of a compressed body.
type chunk struct {
	src  []byte
	out  []byte
	done chan struct{}
}

// chunkBufs are the buffers of chunks sent, reused: allocating and
// growing a frame's buffers cost 6 % of a compressed upload's CPU time.
var chunkBufs sync.Pool

// chunkBuf returns an empty buffer of at least n bytes' capacity.
func chunkBuf(n int) []byte {
	if b, ok := chunkBufs.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:0]
	}
	return make([]byte, 0, n)
}

func putChunkBuf(b []byte) {
	if cap(b) >= 256<<10 {
		b = b[:0]
		chunkBufs.Put(&b)
	}
}

// outBound is the most a frame of n bytes takes, compressed or stored.
func outBound(n int) int { return n + n/128 + 1024 }

// storeWhenIdle reports whether a chunk of a file planned as p goes
// stored (raw) when the link waits for it and every compressing thread is
// busy: only where that costs the link less than compressing the chunk
// costs a thread, i.e. where a thread (at p.speed, 0: not known) is
// slower than the link over the share of the chunk compression saves. A
// 1 MB file that shrinks 35-fold (compressed at 340 MB/s, a 1 Gbit/s
// link) sent a 256 KiB stored frame, 2 ms of the link, on one upload in
// three, for 0.8 ms of a thread; the 91 MB spectrum image (ratio 0.8, 210
// MB/s) keeps the link busy with stored frames when its thread is slowed.
// (CompressAlways never sends a frame that would shrink stored.)
func (c *Client) storeWhenIdle(p plan) bool {
	if c.Compress == CompressAlways {
		return false
	}
	return p.speed <= 0 || p.speed*inSituSpeed*(1-p.ratio) < c.effectiveLink(c.comp.link())
}

// compressedBody returns a reader of zstd frames of frame bytes encoding
// [off, end) of f, compressed by threads goroutines (head, when not nil,
// is the first frame already compressed); a chunk goes stored when the
// link waits for it and every thread is busy, if storeIdle. It stops when
// ctx ends or the reader is closed.
func (c *Client) compressedBody(ctx context.Context, f io.ReaderAt, off, end int64, threads int, frame int64, head []byte, storeIdle bool) io.ReadCloser {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(ctx)
	work := make(chan *chunk)
	order := make(chan *chunk, 2*threads+2)
	var writerIdle atomic.Bool
	var wg sync.WaitGroup
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			enc := encoders.Get()
			defer encoders.Put(enc)
			for ch := range work {
				// The client's threads are shared by all its streams.
				slots := c.comp.threadSlots(c.threads())
				slots <- struct{}{}
				ch.out = enc.EncodeAll(ch.src, chunkBuf(outBound(len(ch.src))))
				<-slots
				if len(ch.out) >= len(ch.src) {
					ch.out = appendStored(ch.out[:0], ch.src)
				}
				close(ch.done)
			}
		}()
	}
	// Read and hand out chunks in order.
	go func() {
		defer close(order)
		defer close(work)
		for at := off; at < end; {
			k := min(frame, end-at)
			ch := &chunk{src: chunkBuf(int(k))[:k], done: make(chan struct{})}
			if _, err := f.ReadAt(ch.src, at); err != nil {
				pw.CloseWithError(err)
				return
			}
			first := at == off
			at += k
			switch {
			case first && head != nil && k == frame:
				ch.out = head
				close(ch.done)
			case storeIdle && writerIdle.Load() && len(order) == 0:
				select {
				case work <- ch:
				default:
					// Every thread is busy and the link waits with
					// nothing else queued: this chunk goes stored, right
					// behind the one being compressed.
					ch.out = appendStored(chunkBuf(outBound(len(ch.src))), ch.src)
					close(ch.done)
				}
			default:
				select {
				case work <- ch:
				case <-ctx.Done():
					return
				}
			}
			select {
			case order <- ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	// Write the frames in order.
	go func() {
		defer wg.Wait()
		for ch := range order {
			writerIdle.Store(true)
			select {
			case <-ch.done:
			case <-ctx.Done():
				pw.CloseWithError(ctx.Err())
				for range order {
				}
				return
			}
			writerIdle.Store(false)
			if _, err := pw.Write(ch.out); err != nil {
				cancel()
				for range order {
				}
				return
			}
			c.comp.raw.Add(int64(len(ch.src)))
			c.comp.wire.Add(int64(len(ch.out)))
			// The pipe's reader has taken every byte: both are free.
			putChunkBuf(ch.src)
			putChunkBuf(ch.out)
		}
		pw.Close()
	}()
	return &pipeBody{PipeReader: pr, cancel: cancel}
}

type pipeBody struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (b *pipeBody) Close() error {
	b.cancel()
	return b.PipeReader.Close()
}

// MeasureCompression compresses all of r (size bytes) as an upload would
// (its frames, its encoder) on one thread, and returns the compressed/raw
// ratio and the speed in bytes/s: what a benchmark sets the transfer
// against.
func MeasureCompression(r io.ReaderAt, size int64) (ratio, speed float64, err error) {
	enc := encoders.Get()
	defer encoders.Put(enc)
	frame := frameSize(size)
	buf := make([]byte, frame)
	var out []byte
	var comp int64
	var spent time.Duration
	for at := int64(0); at < size; at += frame {
		k := min(frame, size-at)
		if _, err := r.ReadAt(buf[:k], at); err != nil {
			return 0, 0, err
		}
		t0 := time.Now()
		out = enc.EncodeAll(buf[:k], out[:0])
		spent += time.Since(t0)
		comp += min(int64(len(out)), k+16)
	}
	if size == 0 {
		return 1, 0, nil
	}
	return float64(comp) / float64(size), float64(size) / max(spent.Seconds(), 1e-9), nil
}

// median of v (not empty), v reordered.
func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

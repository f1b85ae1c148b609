package upload

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// countsData is like a spectrum image's counts: small Poisson-like
// numbers as little-endian uint16, which compress to about a third.
func countsData(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := 0; i+1 < n; i += 2 {
		b[i] = byte(rng.IntN(3) + rng.IntN(3))
	}
	return b
}

func randomData(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// TestStoredFramesDecode: the stored (raw) frames we write by hand decode,
// with klauspost's decoder and with the zstd command (the reference
// implementation), to the bytes they carry, for sizes at and around the
// 128 KiB block limit.
func TestStoredFramesDecode(t *testing.T) {
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	for _, n := range []int{1, 100, 128 << 10, 128<<10 + 1, 3 << 20} {
		src := countsData(n, uint64(n))
		frame := appendStored(nil, src)
		got, err := dec.DecodeAll(frame, nil)
		if err != nil || !bytes.Equal(got, src) {
			t.Fatalf("%d bytes: klauspost decodes %d bytes, err %v", n, len(got), err)
		}
		cmd := exec.Command("zstd", "-d", "-c")
		cmd.Stdin = bytes.NewReader(frame)
		out, err := cmd.Output()
		if err != nil || !bytes.Equal(out, src) {
			t.Fatalf("%d bytes: zstd -d gives %d bytes, err %v", n, len(out), err)
		}
	}
}

// TestCompressedBodyDecodes: a compressed body (frames from several
// threads, stored frames where the threads are behind, the first frame
// the one the sampling compressed) is, to the zstd command, exactly the
// bytes of the range it encodes; compressible data shrinks, random data
// does not grow by more than the frame headers.
func TestCompressedBodyDecodes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name     string
		data     []byte
		maxRatio float64
		head     bool
	}{
		{"counts", countsData(6<<20+12345, 7), 0.5, false},
		{"counts, sampled head", countsData(6<<20+12345, 8), 0.5, true},
		{"counts, large, sampled head", countsData(9<<20+99, 9), 0.5, true},
		{"random", randomData(5<<20, 3), 1.001, true},
	} {
		p := filepath.Join(dir, tc.name)
		os.WriteFile(p, tc.data, 0o644)
		f, _ := os.Open(p)
		c := &Client{}
		const off = 4097
		size := int64(len(tc.data))
		var head []byte
		if tc.head {
			_, _, head = sample(f, off, size)
			if head == nil && tc.maxRatio < 1 {
				t.Fatalf("%s: no head frame from the sampling", tc.name)
			}
		}
		body := c.compressedBody(context.Background(), f, off, size, 2, frameSize(size-off), head, true)
		// Read at 15 MB/s, a link slower than the compressor, even for
		// what compresses to a quarter: (almost) every chunk is
		// compressed. (A faster link takes stored frames meanwhile.)
		wire, err := io.ReadAll(&limited{r: body, l: NewLimiter(15e6), ctx: context.Background()})
		body.Close()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("zstd", "-d", "-c")
		cmd.Stdin = bytes.NewReader(wire)
		out, err := cmd.Output()
		if err != nil || !bytes.Equal(out, tc.data[off:]) {
			t.Fatalf("%s: zstd -d gives %d bytes (want %d), err %v", tc.name, len(out), len(tc.data)-off, err)
		}
		if r := float64(len(wire)) / float64(len(tc.data)-off); r > tc.maxRatio {
			t.Fatalf("%s: %d bytes on the wire for %d, ratio %.3f > %.3f", tc.name, len(wire), len(tc.data)-off, r, tc.maxRatio)
		}
		if s := c.Stats(); s.Raw != int64(len(tc.data)-off) || s.Wire != int64(len(wire)) {
			t.Fatalf("%s: stats %+v", tc.name, s)
		}
	}
}

// TestPlan: compressible data on a slow link is compressed, random data
// never, and a fast link (faster than the compressor) is left raw.
func TestPlan(t *testing.T) {
	dir := t.TempDir()
	counts := filepath.Join(dir, "counts")
	os.WriteFile(counts, countsData(8<<20, 1), 0o644)
	random := filepath.Join(dir, "random")
	os.WriteFile(random, randomData(8<<20, 1), 0o644)
	open := func(p string) *os.File { f, _ := os.Open(p); t.Cleanup(func() { f.Close() }); return f }

	c := &Client{CompressThreads: 1}
	if p := c.planFile(open(counts), 0, 8<<20); p.compress {
		t.Fatal("compressing for a server that did not offer zstd")
	}
	c.comp.serverZstd = true
	c.Limiter = NewLimiter(20e6) // a 160 Mbit/s cap
	p := c.planFile(open(counts), 0, 8<<20)
	if !p.compress || p.ratio > 0.5 || p.speed <= 0 {
		t.Fatalf("counts, capped at 20 MB/s: %+v", p)
	}
	c.Limiter = nil
	if p := c.planFile(open(random), 0, 8<<20); p.compress || p.ratio < 0.99 {
		t.Fatalf("random: %+v", p)
	}
	t.Logf("sampled: ratio %.3f, one thread %.0f MB/s", p.ratio, p.speed/1e6)
	slow := p.speed / 3 // a link a third of the compressor's speed
	c.comp.observe(1<<30, time.Duration(float64(1<<30)/slow*1e9))
	if !c.worthIt(p, c.comp.link(), 8<<20) {
		t.Fatalf("link %.0f MB/s, compressor %.0f MB/s, ratio %.2f: not compressed", c.comp.link()/1e6, p.speed/1e6, p.ratio)
	}
	// The CPU cap: a link faster than the threads compress stays raw,
	// even though the data would shrink.
	if fast := p.speed * 1.2; c.worthIt(p, fast, 8<<20) {
		t.Fatalf("link %.0f MB/s faster than one thread's %.0f MB/s: compressed", fast/1e6, p.speed/1e6)
	}
	c.CompressThreads = 2
	if fast := p.speed * 1.2; !c.worthIt(p, fast, 8<<20) {
		t.Fatalf("link %.0f MB/s slower than two threads' %.0f MB/s: not compressed", fast/1e6, 2*p.speed/1e6)
	}
	// A rate cap is the link's rate as far as the plan goes.
	c.Limiter = NewLimiter(slow)
	if !c.worthIt(p, p.speed*10, 8<<20) {
		t.Fatal("a cap far below the compressor's speed: not compressed")
	}
	c.Limiter, c.CompressThreads = nil, 1
	// A file of one chunk waits for it to be compressed before a byte
	// moves: on a link as fast as the compressor it goes raw.
	if c.worthIt(plan{ratio: 0.5, speed: 125e6}, 0, 600<<10) {
		t.Fatal("a 600 KiB file that halves, compressed at the speed of the (assumed 1 Gbit/s) link: compressed")
	}
	if !c.worthIt(plan{ratio: 0.02, speed: 1e9}, 0, 1<<20) {
		t.Fatal("a 1 MiB file that shrinks fifty-fold, compressed at 1 GB/s: not compressed")
	}
	// A 200 KiB file of counts takes 1.6 ms at 1 Gbit/s: compressing it
	// (its one frame at ~200 MB/s, 1 ms) and the cost of a compressed
	// PATCH take longer than the link saves, so it goes raw, without a
	// sample (which would be that whole compression: the glance tells);
	// under a 20 MB/s cap it is worth it.
	small := filepath.Join(dir, "small")
	os.WriteFile(small, countsData(200<<10, 2), 0o644)
	fresh := &Client{CompressThreads: 1} // the link not measured: 1 Gbit/s assumed
	fresh.comp.serverZstd = true
	if p := fresh.planFile(open(small), 0, 200<<10); p.compress || p.head != nil {
		t.Fatalf("200 KiB at 1 Gbit/s: compress %v, sampled %v", p.compress, p.head != nil)
	}
	// One that shrinks sixty-fold (a camera stack's frames, mostly
	// empty: fei_example_tem_stack.emd, 0.2 MB, arrived 1.25-1.33x as
	// fast as raw compressed) is worth the compressed PATCH's cost.
	sparseSmall := filepath.Join(dir, "sparse-small")
	os.WriteFile(sparseSmall, sparseData(200<<10, 6), 0o644)
	if p := fresh.planFile(open(sparseSmall), 0, 200<<10); !p.compress {
		t.Fatalf("200 KiB that shrinks sixty-fold at 1 Gbit/s: not compressed (ratio %.3f)", p.ratio)
	}
	fresh.Limiter = NewLimiter(20e6)
	if p := fresh.planFile(open(small), 0, 200<<10); !p.compress {
		t.Fatalf("200 KiB under a 20 MB/s cap: not compressed (ratio %.3f)", p.ratio)
	}
	// A 1 MiB file that shrinks some sixty-fold at a glance goes
	// compressed without a sample (its first frame is compressed as the
	// connection opens; under the cap, so that a glance slowed by a busy
	// machine still wins); one that shrinks fourfold, less than three
	// times what 1 Gbit/s needs, is sampled first.
	sparse := filepath.Join(dir, "sparse")
	os.WriteFile(sparse, sparseData(1<<20, 3), 0o644)
	if p := fresh.planFile(open(sparse), 0, 1<<20); !p.compress || p.head != nil || p.ratio > 0.1 {
		t.Fatalf("1 MiB that shrinks sixty-fold: compress %v, sampled %v, ratio %.3f", p.compress, p.head != nil, p.ratio)
	}
	fresh.Limiter = nil
	half := filepath.Join(dir, "half")
	os.WriteFile(half, countsData(1<<20, 4), 0o644)
	if p := fresh.planFile(open(half), 0, 1<<20); p.compress && p.head == nil {
		t.Fatalf("1 MiB of counts (ratio %.3f at a glance): compressed unsampled", p.ratio)
	}
	c.Compress = CompressNever
	if p := c.planFile(open(counts), 0, 8<<20); p.compress {
		t.Fatal("CompressNever compressed")
	}
}

// sparseData is n bytes of counts that are nearly all zero, as a
// spectrum image's channels are (shrinks some sixty-fold).
func sparseData(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 5))
	b := make([]byte, n)
	for i := 0; i+1 < n; i += 2 {
		if rng.IntN(100) == 0 {
			b[i] = byte(1 + rng.IntN(9))
		}
	}
	return b
}

// TestStoredOnlyWhereTheLinkIsFaster: a chunk goes stored when the link
// waits and every thread is busy only where the link carries it sooner
// than a thread compresses it.
func TestStoredOnlyWhereTheLinkIsFaster(t *testing.T) {
	c := &Client{CompressThreads: 1}
	c.comp.observe(1<<30, time.Duration(float64(1<<30)/125e6*1e9)) // 1 Gbit/s
	if c.storeWhenIdle(plan{ratio: 0.03, speed: 340e6}) {
		t.Fatal("ratio 0.03 at 340 MB/s, a 1 Gbit/s link: chunks go stored")
	}
	if !c.storeWhenIdle(plan{ratio: 0.8, speed: 210e6}) {
		t.Fatal("ratio 0.8 at 210 MB/s, a 1 Gbit/s link: chunks wait for the thread")
	}
	if !c.storeWhenIdle(plan{ratio: 0.03, speed: 100e6}) {
		t.Fatal("ratio 0.03 at 100 MB/s, a 1 Gbit/s link: chunks wait for the thread")
	}
	if !c.storeWhenIdle(plan{}) {
		t.Fatal("a speed not known: chunks wait for the threads")
	}
	c.Compress = CompressAlways
	if c.storeWhenIdle(plan{ratio: 0.03, speed: 100e6}) {
		t.Fatal("CompressAlways: chunks go stored")
	}
}

// TestEncodersKeptThroughGarbageCollections: an encoder put back is the
// one the next file gets, however many collections ran between (a
// sync.Pool drops it at the second: 1.6 ms to set up a new one, more than
// compressing a small file).
func TestEncodersKeptThroughGarbageCollections(t *testing.T) {
	var kept []*zstd.Encoder // by the tests before
	for len(encoders.free) > 0 {
		kept = append(kept, <-encoders.free)
	}
	defer func() {
		for _, e := range kept {
			encoders.Put(e)
		}
	}()
	enc := encoders.Get()
	encoders.Put(enc)
	runtime.GC()
	runtime.GC()
	runtime.GC()
	again := encoders.Get()
	defer encoders.Put(again)
	if again != enc {
		t.Fatal("the encoder put back was dropped: a new one was set up")
	}
}

package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/checksum"
	"github.com/picoflow/picoflow/internal/linkem"
	"github.com/picoflow/picoflow/internal/simulate"
	"github.com/picoflow/picoflow/internal/upload"
	"github.com/picoflow/picoflow/internal/upload/tusserver"
)

// linkBench uploads files across an emulated link (internal/linkem) to
// the bench's server: raw against compressed, one stream against
// parallel streams, each file's SHA-256 checked at the server.
type linkBench struct {
	out    io.Writer
	srv    *tusserver.Server
	target string // the server's address
	link   linkem.Link
	dir    string
	// disk is the rate (bytes/s) at which this disk makes a file durable
	// (cp + fdatasync, measured in the same run): every upload's bytes
	// are on disk before it is acknowledged.
	disk float64
	sums map[string]string // SHA-256 of each file sent, computed once
	// agent is the client of the compressed uploads, kept from file to
	// file as a running agent keeps it (the link's rate measured once);
	// rawAgent the same, never compressing: both know the server, so a
	// small file goes in the request that creates its upload.
	agent, rawAgent *upload.Client
	// kept is one proxy (one emulated path) kept for the uploads on the
	// connection an agent keeps open (it pings while it waits), made by
	// keptAgent and keptRaw; nil: each upload crosses a fresh proxy.
	kept               *linkem.Proxy
	keptAgent, keptRaw *upload.Client
}

// linkRun is one upload across the link.
type linkRun struct {
	bytes   int64
	took    time.Duration
	wire    int64 // bytes that carried them
	streams int
	join    time.Duration // the server joining parallel parts
	// cpu is the CPU time the upload took in this process, which holds
	// the client, the emulated link and the server alike.
	cpu time.Duration
}

// cores is how many CPUs the upload kept busy on average.
func (r linkRun) cores() float64 { return r.cpu.Seconds() / r.took.Seconds() }

func (r linkRun) rate() float64 { return float64(r.bytes) / r.took.Seconds() }

// send uploads path through a fresh proxy (so no connection or window
// state carries over) with a client set up by setup.
func (b *linkBench) send(ctx context.Context, path string, setup func(*upload.Client)) (linkRun, error) {
	return b.sendWith(ctx, path, setup, nil)
}

// sendAgent uploads path as the agent's client does, compression chosen
// per file, with what it learnt from the earlier files.
func (b *linkBench) sendAgent(ctx context.Context, path string) (linkRun, error) {
	if b.kept != nil {
		return b.sendWith(ctx, path, func(c *upload.Client) { c.MaxStreams = 1 }, &b.keptAgent)
	}
	return b.sendWith(ctx, path, func(c *upload.Client) { c.MaxStreams = 1 }, &b.agent)
}

// sendRawAgent uploads path as an agent told never to compress does.
func (b *linkBench) sendRawAgent(ctx context.Context, path string) (linkRun, error) {
	if b.kept != nil {
		return b.sendWith(ctx, path, never, &b.keptRaw)
	}
	return b.sendWith(ctx, path, never, &b.rawAgent)
}

// sendWith uploads path through a fresh proxy (or the one kept, for a
// kept client) with a new client set up by setup, or with the one kept
// in shared (made by setup on first use).
func (b *linkBench) sendWith(ctx context.Context, path string, setup func(*upload.Client), shared **upload.Client) (linkRun, error) {
	px := b.kept
	if px == nil || shared == nil {
		var err error
		if px, err = linkem.Start("127.0.0.1:0", b.target, b.link); err != nil {
			return linkRun{}, err
		}
		defer px.Close()
	}
	fi, err := os.Stat(path)
	if err != nil {
		return linkRun{}, err
	}
	size := fi.Size()
	sum, ok := b.sums[path]
	if !ok {
		if sum, _, err = checksum.File(ctx, path); err != nil {
			return linkRun{}, err
		}
		if b.sums == nil {
			b.sums = map[string]string{}
		}
		b.sums[path] = sum
	}
	c := &upload.Client{HTTP: newBenchHTTP()}
	setup(c)
	if shared != nil {
		if *shared == nil {
			*shared = c
		}
		c = *shared
	}
	c.Endpoint = "http://" + px.Addr() + "/files/"
	before := c.Stats()
	streams := 1
	c0 := cpuTime()
	t0 := time.Now()
	u, err := c.Upload(ctx, path, "", map[string]string{upload.MetaFilename: filepath.Base(path), upload.MetaSHA256: sum},
		func(u string) error {
			if p, ok := strings.CutPrefix(u, "parts:"); ok {
				streams = len(strings.Fields(p))
			}
			return nil
		})
	if err != nil {
		return linkRun{}, err
	}
	took, cpu := time.Since(t0), cpuTime()-c0
	info, err := b.srv.Get(ctx, u[strings.LastIndex(u, "/")+1:])
	if err != nil {
		return linkRun{}, err
	}
	defer b.srv.Remove(info.ID)
	if got := b.srv.Digest(info); got != sum {
		return linkRun{}, fmt.Errorf("%s: the server's SHA-256 %q is not the file's %s", path, got, sum)
	}
	st := c.Stats()
	return linkRun{bytes: size, took: took, wire: st.Wire - before.Wire, streams: streams, join: st.Join - before.Join, cpu: cpu}, nil
}

func never(c *upload.Client) { c.Compress, c.MaxStreams = upload.CompressNever, 1 }

// compression compares raw and compressed uploads of each file.
func (b *linkBench) compression(ctx context.Context, files []string, what map[string]string) error {
	fmt.Fprintf(b.out, "\ncompression on the wire (zstd, chosen per file), emulated %s link, RTT %s, one stream:\n", upload.FormatRate(b.link.Rate), b.link.RTT)
	fmt.Fprintf(b.out, "  %-34s %9s %10s %10s %7s %8s %8s  %s\n", "file", "MB", "raw", "zstd", "wire", "speedup", "ceiling", "vs the link")
	floor, err := b.floor(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "  (the floor of any upload, a connection and one creation carrying the bytes, made durable, measured with a 1-byte file: %s; this disk makes files durable at %.0f MB/s)\n", floor.Round(100*time.Microsecond), b.disk/1e6)
	for _, p := range files {
		raw, comp, err := b.pair(ctx, p)
		if err != nil {
			return err
		}
		// The ceiling of compression here: the file compressed on one
		// thread in the same run (its ratio and speed); at best the
		// compressed stream moves at the slower of that thread and the link
		// carrying compressed bytes and the disk making them durable,
		// after the floor every upload pays.
		ratio, speed, err := compressionOf(p)
		if err != nil {
			return err
		}
		size := float64(raw.bytes)
		// What making this file's bytes durable adds to the floor's
		// (whose 1-byte file was made durable too), measured on this size:
		// a small file's sync costs more than the disk's streaming rate
		// says (1 MB: 3 ms, against 2.2 at 455 MB/s). A file that
		// shrinks enough is answered once its compressed body is durable
		// (the server's journal): that size.
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if body := int64(ratio * size); tusserver.Journalled(int64(len(data)), body) {
			data = data[:body]
		}
		durable, err := b.durableBeyondFloor(data)
		if err != nil {
			return err
		}
		best := floor.Seconds() + max(size/speed, ratio*size/b.link.Rate, durable.Seconds())
		ceiling := max(1, raw.took.Seconds()/best)
		verdict := "faster than the link carries raw bytes"
		if comp.rate() < b.link.Rate {
			verdict = fmt.Sprintf("%.2f of the link", comp.rate()/b.link.Rate)
			if linkTime := size / b.link.Rate; floor.Seconds()+durable.Seconds() >= linkTime {
				// Even compressed to nothing in no time it could not
				// arrive durable sooner than the link carries it raw.
				verdict += fmt.Sprintf(", which no upload can beat here: floor + durable write %.1f ms >= the link's %.1f ms",
					(floor.Seconds()+durable.Seconds())*1e3, linkTime*1e3)
			}
		}
		fmt.Fprintf(b.out, "  %-34s %9.1f %10s %10s %6.0f%% %7.2fx %7.2fx  %s (%s; one thread: ratio %.3f at %.0f MB/s; CPUs busy raw %.1f, zstd %.1f of %d; %d rounds)\n", trimName(filepath.Base(p), 34), size/1e6,
			upload.FormatRate(raw.rate()), upload.FormatRate(comp.rate()), 100*float64(comp.wire)/float64(comp.bytes),
			raw.took.Seconds()/comp.took.Seconds(), ceiling, verdict, what[p], ratio, speed/1e6, raw.cores(), comp.cores(), runtime.NumCPU(), rounds(raw.bytes))
	}
	fmt.Fprintf(b.out, "  (ceiling: the raw time over the floor + the slowest of one compressing thread, the link carrying the compressed bytes and the disk making the file durable (a write and fsync of its size, or of its compressed size where the server's journal takes it, less a 1-byte file's, measured now); 1.00x where compression cannot win here)\n")
	return b.keptConnection(ctx, files)
}

// keptConnection sends the files under 8 MiB again, raw and compressed,
// on the connection an agent keeps open (it pings the server while it
// waits for files: keep_connection): one emulated path for all, the
// clients' connections kept from file to file.
func (b *linkBench) keptConnection(ctx context.Context, files []string) error {
	px, err := linkem.Start("127.0.0.1:0", b.target, b.link)
	if err != nil {
		return err
	}
	b.kept = px
	defer func() {
		px.Close()
		b.kept, b.keptAgent, b.keptRaw = nil, nil, nil
	}()
	b.keptAgent = &upload.Client{HTTP: newBenchHTTP(), MaxStreams: 1, Endpoint: "http://" + px.Addr() + "/files/"}
	b.keptRaw = &upload.Client{HTTP: newBenchHTTP(), Endpoint: "http://" + px.Addr() + "/files/"}
	never(b.keptRaw)
	// (The agent's first ping opens the connection and tells it what the
	// server takes.)
	for _, c := range []*upload.Client{b.keptAgent, b.keptRaw} {
		if err := c.Ping(ctx); err != nil {
			return err
		}
	}
	floor, err := b.floor(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.out, "  on the connection the agent keeps open (it pings the server while it waits: no new connection per file; the floor, a 1-byte file, %s):\n", floor.Round(100*time.Microsecond))
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Size() >= 8<<20 {
			continue
		}
		raw, comp, err := b.pair(ctx, p)
		if err != nil {
			return err
		}
		verdict := "faster than the link carries raw bytes"
		if comp.rate() < b.link.Rate {
			verdict = fmt.Sprintf("%.2f of the link", comp.rate()/b.link.Rate)
		}
		fmt.Fprintf(b.out, "  %-34s %9.1f %10s %10s %6.0f%% %7.2fx %8s  %s (%s, %s; %d rounds)\n", trimName(filepath.Base(p), 34), float64(raw.bytes)/1e6,
			upload.FormatRate(raw.rate()), upload.FormatRate(comp.rate()), 100*float64(comp.wire)/float64(comp.bytes),
			raw.took.Seconds()/comp.took.Seconds(), "", verdict, secs(raw.took), secs(comp.took), rounds(raw.bytes))
	}
	return nil
}

// durableBeyondFloor is the median time to write data into a new file
// on the server's disk and fsync it (as the server makes an upload, or
// its journal, durable), less the same for a 1-byte file: what its bytes
// add to the floor.
func (b *linkBench) durableBeyondFloor(data []byte) (time.Duration, error) {
	timed := func(data []byte) (time.Duration, error) {
		var ts []time.Duration
		reps := 7
		if len(data) >= 8<<20 {
			reps = 3
		}
		for i := range reps {
			dst := filepath.Join(b.dir, fmt.Sprintf("durable-%d.emd", i))
			t0 := time.Now()
			f, err := os.Create(dst)
			if err == nil {
				_, err = f.Write(data)
				err = errors.Join(err, f.Sync(), f.Close())
			}
			ts = append(ts, time.Since(t0))
			os.Remove(dst)
			if err != nil {
				return 0, err
			}
		}
		slices.Sort(ts)
		return ts[len(ts)/2], nil
	}
	all, err := timed(data)
	if err != nil {
		return 0, err
	}
	one, err := timed(data[:min(1, len(data))])
	if err != nil {
		return 0, err
	}
	return max(0, all-one), nil
}

// compressionOf measures how the file at p compresses on one thread.
func compressionOf(p string) (ratio, speed float64, err error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	return upload.MeasureCompression(f, fi.Size())
}

// rounds is how many alternating rounds a file of n bytes gets: small
// files, whose times are a few ms, more (a 1 MB file's median of 9 moved
// by 0.2 of the link from run to run on the 2-core VM; 31 take 1 s).
func rounds(n int64) int {
	switch {
	case n < 8<<20:
		return 31
	case n < 256<<20:
		return 3
	}
	return 1
}

// pair uploads p raw and as the agent's client chooses (compressed or
// not, with the link's rate it measured on earlier files), alternating
// which goes first, for rounds(size) rounds, and returns the median of
// each.
func (b *linkBench) pair(ctx context.Context, p string) (raw, comp linkRun, err error) {
	fi, err := os.Stat(p)
	if err != nil {
		return raw, comp, err
	}
	var raws, comps []linkRun
	for i := range rounds(fi.Size()) {
		for j := range 2 {
			if (i+j)%2 == 0 {
				r, err := b.sendRawAgent(ctx, p)
				if err != nil {
					return raw, comp, err
				}
				raws = append(raws, r)
			} else {
				c, err := b.sendAgent(ctx, p)
				if err != nil {
					return raw, comp, err
				}
				comps = append(comps, c)
			}
		}
	}
	return medianRun(raws), medianRun(comps), nil
}

func medianRun(rs []linkRun) linkRun {
	slices.SortFunc(rs, func(a, b linkRun) int { return cmp.Compare(a.took, b.took) })
	return rs[len(rs)/2]
}

// floor is the median time of a 1-byte upload across the link.
func (b *linkBench) floor(ctx context.Context) (time.Duration, error) {
	p := filepath.Join(b.dir, "one-byte.emd")
	if err := os.WriteFile(p, []byte{1}, 0o644); err != nil {
		return 0, err
	}
	// (The first tells the agent's client what the server takes.)
	if _, err := b.sendRawAgent(ctx, p); err != nil {
		return 0, err
	}
	var rs []linkRun
	for range 5 {
		r, err := b.sendRawAgent(ctx, p)
		if err != nil {
			return 0, err
		}
		rs = append(rs, r)
	}
	return medianRun(rs).took, nil
}

func trimName(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// simulateLinkFiles writes the paper's two simulated files: a 91 MB
// spectrum image and a 1.2 GB movie (picoflow simulate's sizes).
func simulateLinkFiles(ctx context.Context, dir string, movieFrames int) (si, movie string, err error) {
	si = filepath.Join(dir, "si_512_91MB.emd")
	if _, err = simulate.WriteSpectrumImage(ctx, si, simulate.SpectrumImageSpec{Width: 512, Height: 512, Support: "C",
		Elements: []string{"Au", "Fe", "Cu"}, Seed: 1, CountsPerPixel: simulate.CountsForSize(91e6, 512, 512)}); err != nil {
		return "", "", err
	}
	movie = filepath.Join(dir, fmt.Sprintf("movie_512_%dframes.emd", movieFrames))
	if _, err = simulate.WriteMovie(ctx, movie, simulate.MovieSpec{Frames: movieFrames, Width: 512, Height: 512, Particles: 12, Seed: 1}); err != nil {
		return "", "", err
	}
	return si, movie, nil
}

// realFiles lists the EMD files under dir (../shared/data), if any.
func realFiles(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".emd") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func newBenchHTTP() *http.Client { return &http.Client{Transport: upload.NewTransport()} }

// run measures the sections asked for.
func (b *linkBench) run(ctx context.Context, sections string, movieFrames int, dataDir string) error {
	fmt.Fprintf(b.out, "\nsimulating the files (picoflow simulate's 91 MB spectrum image and %d-frame movie) ...\n", movieFrames)
	si, movie, err := simulateLinkFiles(ctx, b.dir, movieFrames)
	if err != nil {
		return err
	}
	defer os.Remove(movie)
	has := func(s string) bool { return strings.Contains(","+sections+",", ","+s+",") }
	if has("raw") {
		r, err := b.send(ctx, movie, never)
		if err != nil {
			return err
		}
		// The ceiling: the same bytes over one bare TCP connection across
		// the same emulated link, no protocol, no check, not durable.
		bare, err := rawThrough(ctx, movie, filepath.Join(b.dir, "bare.emd"), &b.link)
		if err != nil {
			return err
		}
		bareRate := float64(r.bytes) / bare.Seconds()
		fmt.Fprintf(b.out, "\nceiling: the movie over one bare TCP connection across the emulated link: %s = %.3f of the link\n", upload.FormatRate(bareRate), bareRate/b.link.Rate)
		fmt.Fprintf(b.out, "\nraw, one stream, emulated %s link, RTT %s: the %.2f GB movie at %s = %.3f of the link (%s) = %.3f of the bare TCP ceiling\n",
			upload.FormatRate(b.link.Rate), b.link.RTT, float64(r.bytes)/1e9, upload.FormatRate(r.rate()), r.rate()/b.link.Rate, secs(r.took), r.rate()/bareRate)
	}
	if has("zstd") {
		files := []string{si, movie}
		what := map[string]string{si: "simulated", movie: "simulated"}
		for _, p := range realFiles(dataDir) {
			files = append(files, p)
			what[p] = "real, " + filepath.Base(filepath.Dir(p))
		}
		if err := b.compression(ctx, files, what); err != nil {
			return err
		}
	}
	if has("parallel") {
		one, err := b.send(ctx, movie, never)
		if err != nil {
			return err
		}
		par, err := b.send(ctx, movie, func(c *upload.Client) { c.Compress = upload.CompressNever })
		if err != nil {
			return err
		}
		w := float64(b.link.Window)
		if w <= 0 {
			w = 4 << 20
		}
		ceiling := b.link.Rate
		if b.link.RTT > 0 {
			ceiling = min(ceiling, w/b.link.RTT.Seconds())
		}
		fmt.Fprintf(b.out, "\nparallel streams, emulated %s link, RTT %s, the %.2f GB movie, raw:\n", upload.FormatRate(b.link.Rate), b.link.RTT, float64(one.bytes)/1e9)
		fmt.Fprintf(b.out, "  one stream      %10s = %.3f of the link (%s; one stream's ceiling, window/RTT: %s)\n", upload.FormatRate(one.rate()), one.rate()/b.link.Rate, secs(one.took), upload.FormatRate(ceiling))
		fmt.Fprintf(b.out, "  %d streams      %10s = %.3f of the link (%s, joined and hashed at the server) = %.2fx one stream\n", par.streams, upload.FormatRate(par.rate()), par.rate()/b.link.Rate, secs(par.took), one.took.Seconds()/par.took.Seconds())
		sending := par.took - par.join
		fmt.Fprintf(b.out, "    of which the parts on the wire %s = %.3f of the link; the server joining them (parts written in place: SHA-256 of all but the first, rename) %s\n",
			secs(sending), float64(par.bytes)/sending.Seconds()/b.link.Rate, secs(par.join))
		// The join's floor on this machine: SHA-256 of the bytes after the
		// first part (from the page cache), measured now; and what a join
		// copying the parts would add (cp + fdatasync of the same bytes).
		hashTook, err := hashTail(movie, par.bytes/int64(max(par.streams, 1)))
		if err != nil {
			return err
		}
		cpSync, err := timeCopy(ctx, movie, filepath.Join(b.dir, "copy.emd"), true)
		if err != nil {
			return err
		}
		linkTime := time.Duration(float64(par.bytes) / b.link.Rate * float64(time.Second))
		fmt.Fprintf(b.out, "    ceiling: the link's time for the bytes + SHA-256 of all but the first part (%s) = %.3f of the link; with a copying join (cp + fdatasync, %s) it would be %.3f\n",
			secs(hashTook), float64(par.bytes)/(linkTime+hashTook).Seconds()/b.link.Rate,
			secs(cpSync), float64(par.bytes)/(linkTime+cpSync).Seconds()/b.link.Rate)
	}
	return nil
}

// hashTail times the SHA-256 of the file at path from offset from on.
func hashTail(path string, from int64) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	t0 := time.Now()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, from, 1<<62)); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/agent"
	"github.com/picoflow/picoflow/internal/box"
	"github.com/picoflow/picoflow/internal/checksum"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/linkem"
	"github.com/picoflow/picoflow/internal/sandbox"
	"github.com/picoflow/picoflow/internal/simulate"
	"github.com/picoflow/picoflow/internal/upload"
	"github.com/picoflow/picoflow/internal/upload/tusserver"
)

func medianDur(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func benchTransferCmd() *cobra.Command {
	var sizeMB, rounds int
	var maxRate, linkRate string
	var rtt, jitter time.Duration
	var window, movieFrames int
	var sections, dataDir string
	cmd := &cobra.Command{
		Use:   "transfer",
		Short: "Resumable upload over loopback (tus, durable at the server) against cp + fdatasync of the same file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			dir, err := os.MkdirTemp("", "picoflow-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			src := filepath.Join(dir, "data.emd")
			fh, err := os.Create(src)
			if err != nil {
				return err
			}
			if _, err := io.CopyN(fh, rand.Reader, int64(sizeMB)<<20); err != nil {
				return err
			}
			fh.Close()
			srv, err := tusserver.New(tusserver.Config{Dir: filepath.Join(dir, "uploads"), BasePath: "/files/"})
			if err != nil {
				return err
			}
			ts := httptest.NewServer(http.StripPrefix("/files/", srv.Handler()))
			defer ts.Close()
			c := &upload.Client{Endpoint: ts.URL + "/files/"}
			var cpT, cpSyncT, tusT, verT, hashT, rawT []time.Duration
			for i := range rounds {
				d, err := rawLoopback(cmd.Context(), src, filepath.Join(dir, "raw.emd"))
				if err != nil {
					return err
				}
				rawT = append(rawT, d)

				dst := filepath.Join(dir, "copy.emd")
				d, err = timeCopy(cmd.Context(), src, dst, false)
				if err != nil {
					return err
				}
				cpT = append(cpT, d)
				// cp made durable, as the server makes every PATCH before it
				// acknowledges the bytes.
				if d, err = timeCopy(cmd.Context(), src, dst, true); err != nil {
					return err
				}
				cpSyncT = append(cpSyncT, d)

				t0 := time.Now()
				sum, _, err := checksum.File(cmd.Context(), src)
				if err != nil {
					return err
				}
				hashT = append(hashT, time.Since(t0))
				t0 = time.Now()
				u, err := c.Upload(cmd.Context(), src, "", map[string]string{upload.MetaFilename: "data.emd", upload.MetaSHA256: sum}, func(string) error { return nil })
				if err != nil {
					return err
				}
				tusT = append(tusT, time.Since(t0))
				info, err := srv.Get(cmd.Context(), u[strings.LastIndex(u, "/")+1:])
				if err != nil {
					return err
				}
				// As the transfer step: the digest computed on arrival,
				// else a read of the file.
				got := srv.Digest(info)
				if got == "" {
					if got, _, err = checksum.File(cmd.Context(), info.Path); err != nil {
						return err
					}
				}
				if got != sum {
					return fmt.Errorf("round %d: checksum mismatch", i)
				}
				verT = append(verT, time.Since(t0))
				srv.Remove(info.ID)
			}
			mb := float64(sizeMB) * 1.048576
			cp, cs, tu, ve, ha, ra := medianDur(cpT), medianDur(cpSyncT), medianDur(tusT), medianDur(verT), medianDur(hashT), medianDur(rawT)
			fmt.Fprintf(out, "%d MB file, %d alternating rounds, medians:\n", sizeMB, rounds)
			fmt.Fprintf(out, "  cp                                   %6.0f MB/s (not durable: the page cache)\n", mb/cp.Seconds())
			fmt.Fprintf(out, "  cp + fdatasync                       %6.0f MB/s\n", mb/cs.Seconds())
			fmt.Fprintf(out, "  tus upload over loopback (durable)   %6.0f MB/s  = %.2fx cp, %.2fx cp + fdatasync\n", mb/tu.Seconds(), cp.Seconds()/tu.Seconds(), cs.Seconds()/tu.Seconds())
			fmt.Fprintf(out, "  upload + SHA-256 check at the server %6.0f MB/s  = %.2fx cp, %.2fx cp + fdatasync\n", mb/ve.Seconds(), cp.Seconds()/ve.Seconds(), cs.Seconds()/ve.Seconds())
			fmt.Fprintf(out, "  SHA-256 at the source (once, before) %6.0f MB/s\n", mb/ha.Seconds())
			fmt.Fprintf(out, "  ceiling: bare loopback TCP           %6.0f MB/s  = %.2fx cp (sendfile -> splice into a file: no protocol, no check, not durable)\n", mb/ra.Seconds(), cp.Seconds()/ra.Seconds())
			if linkRate != "" {
				lr, err := upload.ParseRate(linkRate)
				if err != nil || lr <= 0 {
					return fmt.Errorf("--link %q: %v", linkRate, err)
				}
				lb := &linkBench{out: out, srv: srv, target: ts.Listener.Addr().String(), dir: dir,
					link: linkem.Link{Rate: lr, RTT: rtt, Jitter: jitter, Window: window}, disk: mb * 1e6 / cs.Seconds()}
				if err := lb.run(cmd.Context(), sections, movieFrames, dataDir); err != nil {
					return err
				}
			}
			if maxRate != "" {
				// A polite agent: the same upload under a rate cap, which
				// must hold the rate within a few per cent of the cap.
				capRate, err := upload.ParseRate(maxRate)
				if err != nil || capRate <= 0 {
					return fmt.Errorf("--max-rate %q: %v", maxRate, err)
				}
				sum, _, _ := checksum.File(cmd.Context(), src)
				capped := &upload.Client{Endpoint: ts.URL + "/files/", Limiter: upload.NewLimiter(capRate)}
				t0 := time.Now()
				u, err := capped.Upload(cmd.Context(), src, "", map[string]string{upload.MetaFilename: "data.emd", upload.MetaSHA256: sum}, func(string) error { return nil })
				if err != nil {
					return err
				}
				el := time.Since(t0)
				got := float64(sizeMB<<20) / el.Seconds()
				fmt.Fprintf(out, "  capped at %s                    %s measured over %s = %.3f of the cap\n", upload.FormatRate(capRate), upload.FormatRate(got), secs(el), got/capRate)
				if info, err := srv.Get(cmd.Context(), u[strings.LastIndex(u, "/")+1:]); err == nil {
					srv.Remove(info.ID)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&maxRate, "max-rate", "", "also upload under this rate cap (e.g. 200Mbit) and report the rate against it")
	cmd.Flags().StringVar(&linkRate, "link", "", "also upload across an emulated link of this rate (e.g. 1Gbit)")
	cmd.Flags().DurationVar(&rtt, "rtt", time.Millisecond, "the emulated link's round trip time")
	cmd.Flags().DurationVar(&jitter, "jitter", 0, "the emulated link's jitter (extra one-way delay up to this)")
	cmd.Flags().IntVar(&window, "window", 4<<20, "bytes one connection keeps in flight on the emulated link (TCP's window)")
	cmd.Flags().StringVar(&sections, "sections", "raw,zstd,parallel", "with --link: what to measure (raw: the movie raw on one stream; zstd: raw against compressed for each file; parallel: one stream against parallel streams)")
	cmd.Flags().IntVar(&movieFrames, "movie-frames", 600, "with --link: frames of the simulated 512x512 movie (600: 1.3 GB, the paper's)")
	cmd.Flags().StringVar(&dataDir, "data", "../shared/data", "with --link: real EMD files to send as well (skipped when absent)")
	cmd.Flags().IntVar(&sizeMB, "size-mb", 256, "file size in MiB")
	cmd.Flags().IntVar(&rounds, "rounds", 5, "rounds (each: cp, then upload)")
	return cmd
}

// rawLoopback sends src over one loopback TCP connection into dst with no
// protocol at all (sendfile on one side, splice into the file on the
// other): the most any upload over loopback can do on this machine.
func rawLoopback(ctx context.Context, src, dst string) (time.Duration, error) {
	return rawThrough(ctx, src, dst, nil)
}

// rawThrough is rawLoopback across an emulated link (nil: none).
func rawThrough(ctx context.Context, src, dst string, link *linkem.Link) (time.Duration, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("raw loopback: %w", err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	if link != nil {
		px, err := linkem.Start("127.0.0.1:0", addr, *link)
		if err != nil {
			return 0, err
		}
		defer px.Close()
		addr = px.Addr()
	}
	defer os.Remove(dst)
	recv := make(chan error, 1)
	t0 := time.Now()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			recv <- err
			return
		}
		defer c.Close()
		f, err := os.Create(dst)
		if err != nil {
			recv <- err
			return
		}
		_, err = f.ReadFrom(c)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		recv <- err
	}()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("raw loopback: %w", err)
	}
	f, err := os.Open(src)
	if err != nil {
		c.Close()
		return 0, err
	}
	_, err = c.(*net.TCPConn).ReadFrom(f)
	f.Close()
	c.Close()
	if rerr := <-recv; err == nil {
		err = rerr
	}
	if err != nil {
		return 0, fmt.Errorf("raw loopback: %w", err)
	}
	return time.Since(t0), nil
}

func benchFlowsCmd(workers *sandbox.Registry) *cobra.Command {
	var files, size int
	var sizeMB float64
	cmd := &cobra.Command{
		Use:   "flows",
		Short: "Spectrum images through agent, server and analysis: flow runtime and orchestration overhead",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			dir, err := os.MkdirTemp("", "picoflow-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			// Simulate first, outside the watched folder, so the flows are
			// timed without the simulator competing for the CPU.
			src := filepath.Join(dir, "staging")
			os.MkdirAll(src, 0o755)
			for i := range files {
				if _, err := simulate.WriteSpectrumImage(cmd.Context(), filepath.Join(src, fmt.Sprintf("si_%03d.emd", i)), simulate.SpectrumImageSpec{
					Width: size, Height: size, Support: "C", Elements: []string{"Au", "Fe", "Cu"}, Seed: uint64(i + 1),
					CountsPerPixel: simulate.CountsForSize(int64(sizeMB*1e6), size, size)}); err != nil {
					return err
				}
			}
			var mu sync.Mutex
			done := map[string]bool{}
			b, err := box.Start(cmd.Context(), box.Config{Dir: filepath.Join(dir, "box"), Workers: workers, Settle: 300 * time.Millisecond,
				Logger: quietLogger(), OnChange: func(e agent.Entry) {
					if e.State == agent.StateDone || e.State == agent.StateFailed {
						mu.Lock()
						done[e.Path] = true
						mu.Unlock()
					}
				}})
			if err != nil {
				return err
			}
			defer b.Stop(context.Background())
			t0 := time.Now()
			for i := range files {
				name := fmt.Sprintf("si_%03d.emd", i)
				// A rename is atomic: the agent sees whole files, one after another.
				if err := os.Rename(filepath.Join(src, name), filepath.Join(b.Folders["hyperspectral"], name)); err != nil {
					return err
				}
				for {
					mu.Lock()
					n := len(done)
					mu.Unlock()
					if n > i || cmd.Context().Err() != nil {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			st, err := b.Server.Engine.Stats(cmd.Context(), t0.Add(-time.Minute), flow.ListQuery{All: true})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%d spectrum images of %.0f MB through agent -> server -> analysis -> catalog (one at a time)\n", files, sizeMB)
			printStats(out, st)
			for _, s := range st {
				fmt.Fprintf(out, "\norchestration overhead per flow: median %s, mean %s (%.2f%% of runtime); the paper's median: 19.5 s of 45.2 s (43%%)\n",
					secs(s.MedianOverhead), secs(s.MeanOverhead), 100*s.OverheadShare)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&files, "files", 5, "spectrum images")
	cmd.Flags().IntVar(&size, "size", 512, "width and height")
	cmd.Flags().Float64Var(&sizeMB, "size-mb", 91, "file size (MB)")
	return cmd
}

// timeCopy times cp of src to dst, made durable when durable (sync -d:
// fdatasync of the copy), and removes the copy.
func timeCopy(ctx context.Context, src, dst string, durable bool) (time.Duration, error) {
	c := exec.CommandContext(ctx, "cp", src, dst)
	if durable {
		c = exec.CommandContext(ctx, "sh", "-c", `cp "$0" "$1" && sync -d "$1"`, src, dst)
	}
	t0 := time.Now()
	out, err := c.CombinedOutput()
	took := time.Since(t0)
	os.Remove(dst)
	if err != nil {
		return 0, fmt.Errorf("cp: %w: %s", err, out)
	}
	return took, nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/agent"
	"github.com/picoflow/picoflow/internal/box"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/sandbox"
	"github.com/picoflow/picoflow/internal/server"
	"github.com/picoflow/picoflow/internal/simulate"
)

type demoOptions struct {
	dir, addr                  string
	duration, siEvery, mvEvery time.Duration
	siSize, mvSize, mvFrames   int
	siMB                       float64
	settle                     time.Duration
	verbose                    bool
	keep                       bool
}

func demoCmd(workers *sandbox.Registry) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole system on this machine with a simulated microscope",
		Long: `Run server, analysis, catalog and agent on this machine, with a simulator
writing realistic Velox EMD files into the instrument folders as in the paper's
experiment: a hyperspectral file every 30 s and a movie every 120 s. Each file
is detected, checked, hashed, uploaded (tus, SHA-256 verified at the server),
analysed, catalogued and reported with its step timings; at the end the flow
statistics (runtime, active time, overhead) are printed. Records are public,
so the REST API answers without a token:
  curl 'http://127.0.0.1:8470/api/v1/records?element=Au'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), workers, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "working directory (default: a new temporary directory)")
	f.StringVar(&o.addr, "addr", "127.0.0.1:8470", "server listen address")
	f.DurationVar(&o.duration, "duration", 2*time.Minute, "how long the microscope acquires (0: until interrupted)")
	f.DurationVar(&o.siEvery, "si-every", 30*time.Second, "a spectrum image every")
	f.DurationVar(&o.mvEvery, "movie-every", 2*time.Minute, "a movie every")
	f.IntVar(&o.siSize, "si-size", 512, "spectrum image width and height (pixels)")
	f.Float64Var(&o.siMB, "si-mb", 91, "spectrum image file size (MB; the paper's is 91)")
	f.IntVar(&o.mvSize, "movie-size", 512, "movie frame width and height (pixels)")
	f.IntVar(&o.mvFrames, "movie-frames", 100, "movie frames (600 at 512x512 is the paper's 1.2 GB)")
	f.DurationVar(&o.settle, "settle", time.Second, "how long a file must stay unchanged before it is sent")
	f.BoolVarP(&o.verbose, "verbose", "v", false, "log every component to the terminal (default: to DIR/demo.log)")
	f.BoolVar(&o.keep, "keep", false, "keep the server and portal running after the summary, until Ctrl-C")
	return cmd
}

// demoPrinter prints one line per milestone of each file.
type demoPrinter struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	b     *box.Box
	final map[string]string // path -> terminal state
}

func (p *demoPrinter) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%6.1fs] "+format+"\n", append([]any{time.Since(p.start).Seconds()}, args...)...)
}

func (p *demoPrinter) onChange(e agent.Entry) {
	name := filepath.Base(e.Path)
	switch e.State {
	case agent.StateReady:
		p.printf("%-16s complete, sha256 %s…, %.1f MB → uploading", name, e.SHA256[:12], float64(e.Size)/1e6)
	case agent.StateStarted:
		p.printf("%-16s uploaded → flow %s, run %s", name, e.Flow, e.RunID)
	case agent.StateDone, agent.StateFailed, agent.StateDuplicate:
		p.mu.Lock()
		p.final[e.Path] = e.State
		p.mu.Unlock()
		if e.State == agent.StateDuplicate {
			p.printf("%-16s same content as an earlier file: not processed again", name)
			return
		}
		run, err := p.b.Server.Engine.Run(context.Background(), e.RunID)
		if err != nil {
			p.printf("%-16s %s (%v)", name, e.State, err)
			return
		}
		var steps []string
		var active time.Duration
		for _, s := range run.Steps {
			steps = append(steps, fmt.Sprintf("%s %s", s.Name, secs(s.Active)))
			active += s.Active
		}
		if e.State == agent.StateFailed {
			p.printf("%-16s FAILED: %s", name, run.Error)
			return
		}
		for _, al := range server.RunAlerts(run) {
			if al.Level == "warning" {
				p.printf("%-16s alert for the operator: %s", name, al.Message)
			}
		}
		total := run.Finished.Sub(run.Created)
		extra := ""
		if e, err := p.b.Server.Catalog.Get(context.Background(), run.RecordID, []string{"role:admin"}); err == nil && len(e.Elements()) > 0 {
			extra = " elements " + strings.Join(e.Elements(), ", ")
		}
		p.printf("%-16s done in %s (%s; overhead %s)%s", name, secs(total), strings.Join(steps, ", "), secs(total-active), extra)
	}
}

func runDemo(ctx context.Context, out io.Writer, workers *sandbox.Registry, o demoOptions) error {
	dir := o.dir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "picoflow-demo-"); err != nil {
			return err
		}
	}
	// The agent reports absolute paths: the files written below must be
	// named the same way, or the demo would never see them finish.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	// The services log to a file, so their lines do not break up the
	// demo's own; --verbose shows them on the terminal instead.
	logTo, logName := io.Writer(os.Stderr), "the terminal"
	if !o.verbose {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(dir, "demo.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("demo log: %w", err)
		}
		defer f.Close()
		logTo, logName = f, f.Name()
	}
	p := &demoPrinter{w: out, start: time.Now(), final: map[string]string{}}
	b, err := box.Start(ctx, box.Config{Dir: dir, Addr: o.addr, Public: true, Workers: workers, Settle: o.settle,
		Logger: slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelInfo})), OnChange: p.onChange})
	if err != nil {
		return err
	}
	p.b = b
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b.Stop(ctx)
	}()
	fmt.Fprintf(out, "picoflow demo\n  server     %s   (records are public: %s/api/v1/records)\n  data       %s\n", b.Server.URL(), b.Server.URL(), dir)
	fmt.Fprintf(out, "  instrument %s (spectrum images every %s)\n             %s (movies every %s)\n", b.Folders["hyperspectral"], o.siEvery, b.Folders["spatiotemporal"], o.mvEvery)
	fmt.Fprintf(out, "  portal     %s/search   (sign in as admin / %s)\n", b.Server.URL(), b.AdminPassword)
	fmt.Fprintf(out, "  API token  %s\n", b.AdminToken)
	fmt.Fprintf(out, "  logs       %s\n", logName)
	if o.duration > 0 {
		fmt.Fprintf(out, "  acquiring for %s, then waiting for the last flows; Ctrl-C stops early\n\n", o.duration)
	}

	// Seeds differ per demo so a second demo on the same server makes new
	// files (the same content would rightly not be processed again).
	seed := uint64(time.Now().UnixNano())
	elements := [][]string{{"Au", "Fe", "Cu"}, {"Pt", "Ni"}, {"Ag", "Ti", "O"}, {"Pd", "Co", "Zn"}}
	written := []string{}
	siN, mvN := 0, 0
	nextSI, nextMV := time.Duration(0), 10*time.Second
	acquire := ctx
	var stop context.CancelFunc = func() {}
	if o.duration > 0 {
		acquire, stop = context.WithTimeout(ctx, o.duration)
	}
	defer stop()
	start := time.Now()
	for acquire.Err() == nil {
		now := time.Since(start)
		switch {
		case now >= nextSI:
			siN++
			nextSI += o.siEvery
			name := fmt.Sprintf("si_%04d.emd", siN)
			path := filepath.Join(b.Folders["hyperspectral"], name)
			els := elements[(siN-1)%len(elements)]
			t0 := time.Now()
			_, err := simulate.WriteSpectrumImage(acquire, path, simulate.SpectrumImageSpec{Width: o.siSize, Height: o.siSize, Support: "C", Elements: els,
				CountsPerPixel: simulate.CountsForSize(int64(o.siMB*1e6), o.siSize, o.siSize), Seed: seed + uint64(siN)})
			if err != nil {
				if acquire.Err() != nil {
					break
				}
				return err
			}
			written = append(written, path)
			p.printf("%-16s written by the microscope in %s (%dx%d spectrum image: %s on C)", name, secs(time.Since(t0)), o.siSize, o.siSize, strings.Join(els, ", "))
		case o.mvEvery > 0 && now >= nextMV:
			mvN++
			nextMV += o.mvEvery
			name := fmt.Sprintf("movie_%04d.emd", mvN)
			path := filepath.Join(b.Folders["spatiotemporal"], name)
			t0 := time.Now()
			if _, err := simulate.WriteMovie(acquire, path, simulate.MovieSpec{Frames: o.mvFrames, Width: o.mvSize, Height: o.mvSize, Particles: 12, Seed: seed + 1000 + uint64(mvN)}); err != nil {
				if acquire.Err() != nil {
					break
				}
				return err
			}
			written = append(written, path)
			p.printf("%-16s written by the microscope in %s (%d frames of %dx%d)", name, secs(time.Since(t0)), o.mvFrames, o.mvSize, o.mvSize)
		default:
			select {
			case <-acquire.Done():
			case <-time.After(min(nextSI, nextMV) - now):
			}
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(out, "\ninterrupted")
		return nil
	}
	// Wait for every written file to reach a final state.
	deadline := time.Now().Add(10 * time.Minute)
	for {
		p.mu.Lock()
		left := 0
		for _, w := range written {
			if _, ok := p.final[w]; !ok {
				left++
			}
		}
		p.mu.Unlock()
		if left == 0 || ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Fprintln(out)
	st, err := b.Server.Engine.Stats(context.Background(), time.Time{}, flow.ListQuery{All: true})
	if err != nil {
		return err
	}
	printStats(out, st)
	self := selfCommand()
	fmt.Fprintf(out, "\ndata kept in %s (%s stats --data %s)\n", dir, self, filepath.Join(dir, "server"))
	if o.keep {
		fmt.Fprintf(out, "the portal stays open at %s/search until Ctrl-C\n", b.Server.URL())
		<-ctx.Done()
		return nil
	}
	fmt.Fprintf(out, "to browse it again: %s server --data %s --public, then open http://127.0.0.1:8470/search\n", self, filepath.Join(dir, "server"))
	return nil
}

// selfCommand is how to call this binary again from the current directory:
// a relative path when it lies below it (bin/picoflow after make), its name
// when it is the one on PATH, else its absolute path.
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "picoflow"
	}
	if onPath, err := exec.LookPath(filepath.Base(exe)); err == nil {
		if a, _ := filepath.EvalSymlinks(onPath); a != "" {
			if b, _ := filepath.EvalSymlinks(exe); a == b {
				return filepath.Base(exe)
			}
		}
	}
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, exe); err == nil && !strings.HasPrefix(rel, "..") {
			return "./" + rel
		}
	}
	return exe
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/agent"
	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/campaign"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/sandbox"
	"github.com/picoflow/picoflow/internal/server"
	"github.com/picoflow/picoflow/internal/simulate"
	"github.com/picoflow/picoflow/internal/store"
)

// campaignBench configures the re-analysis campaign benchmark.
type campaignBench struct {
	dir         string
	records     int
	size        int     // spectrum image width and height
	counts      float64 // X-rays per pixel
	killAt      float64 // fraction of records settled when the server is killed (0: never)
	maxInFlight int
	workers     int // analysis workers of the server
}

// campaignResult is what the benchmark measured.
type campaignResult struct {
	Records, Done, Skipped, Failed int
	Versions                       map[int]int // records by number of versions
	OldVersionsChanged             int
	Wall, Downtime                 time.Duration
	MeanActive                     time.Duration // step work per record (transfer, analyze, publish)
	AnalysisOnly                   time.Duration // the same analyses, same worker processes, nothing else
	Killed                         bool
}

func benchCampaignCmd(workers *sandbox.Registry) *cobra.Command {
	var o campaignBench
	cmd := &cobra.Command{
		Use:   "campaign",
		Short: "A re-analysis campaign over N records with the server killed (SIGKILL) half way",
		Long: `Ingests N small simulated spectrum images through agent, server (a separate
process) and analysis, then starts a re-analysis campaign over all of them with
new parameters through the API, kills the server with SIGKILL when --kill-at of the
records are settled, restarts it, and waits for the campaign to finish. Checks that
every record has exactly one new version and that the old versions are unchanged.
Reports records/s beside the same analyses run alone (same worker processes, as
many at once as the server's analysis workers, same parameters: the ceiling), and
the campaign's overhead per record: its wall time per record, the server's downtime
left out, minus the analysis alone's.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.dir == "" {
				d, err := os.MkdirTemp("", "picoflow-bench-campaign-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				o.dir = d
			}
			res, err := runCampaignBench(cmd.Context(), cmd.OutOrStdout(), workers, o)
			if err != nil {
				return err
			}
			return res.check()
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "working directory (default: a temporary one, removed after)")
	f.IntVar(&o.records, "records", 1000, "records in the campaign")
	f.IntVar(&o.size, "size", 32, "spectrum image width and height (pixels)")
	f.Float64Var(&o.counts, "counts", 40, "X-rays per pixel")
	f.Float64Var(&o.killAt, "kill-at", 0.5, "kill the server when this fraction of records is settled (0: never)")
	f.IntVar(&o.maxInFlight, "max-in-flight", 4, "campaign runs under way at once")
	f.IntVar(&o.workers, "analysis-workers", 2, "the server's analysis workers")
	return cmd
}

// check says what the benchmark found wrong.
func (r *campaignResult) check() error {
	var errs []error
	if r.Done != r.Records || r.Skipped != 0 || r.Failed != 0 {
		errs = append(errs, fmt.Errorf("campaign: %d done, %d skipped, %d failed of %d records", r.Done, r.Skipped, r.Failed, r.Records))
	}
	if r.Versions[2] != r.Records {
		errs = append(errs, fmt.Errorf("records by number of versions: %v (want all %d with 2)", r.Versions, r.Records))
	}
	if r.OldVersionsChanged > 0 {
		errs = append(errs, fmt.Errorf("%d first versions changed", r.OldVersionsChanged))
	}
	return errors.Join(errs...)
}

// serverProc is a picoflow server in a child process.
type serverProc struct {
	cmd  *exec.Cmd
	base string
}

func startServerProc(ctx context.Context, data, addr string, workers int, log io.Writer) (*serverProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// (Under go test the test binary runs command lines like this one: see
	// TestMain.)
	cmd := exec.Command(exe, "server", "--data", data, "--addr", addr, "--analysis-workers", fmt.Sprint(workers))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serverProc{cmd: cmd, base: "http://" + addr}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(p.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.kill()
			return nil, fmt.Errorf("server did not start: %v", err)
		}
	}
}

func (p *serverProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func runCampaignBench(ctx context.Context, out io.Writer, workers *sandbox.Registry, o campaignBench) (*campaignResult, error) {
	res := &campaignResult{Records: o.records, Versions: map[int]int{}}
	data, folder := filepath.Join(o.dir, "server"), filepath.Join(o.dir, "instrument")
	for _, d := range []string{data, folder} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	db, err := store.Open(ctx, filepath.Join(data, "picoflow.db"))
	if err != nil {
		return nil, err
	}
	token, err := auth.NewTokens(db.Write, db.Read).Create(ctx, "bench", "agent:bench", auth.RoleAgent, auth.RoleAdmin)
	db.Close()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(filepath.Join(o.dir, "server.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()

	// The files, written outside the watched folder and moved in.
	t0 := time.Now()
	var paths []string
	for i := range o.records {
		p := filepath.Join(o.dir, fmt.Sprintf("si_%05d.emd", i))
		if _, err := simulate.WriteSpectrumImage(ctx, p, simulate.SpectrumImageSpec{Width: o.size, Height: o.size, Support: "C",
			Elements: [][]string{{"Au", "Cu"}, {"Fe", "Ni"}, {"Ti", "O"}}[i%3], CountsPerPixel: o.counts, Seed: uint64(7000 + i)}); err != nil {
			return nil, err
		}
		os.Remove(p + ".truth.json")
		paths = append(paths, p)
	}
	fmt.Fprintf(out, "%d spectrum images of %dx%d px written in %s\n", o.records, o.size, o.size, secs(time.Since(t0)))

	srv, err := startServerProc(ctx, data, addr, o.workers, logf)
	if err != nil {
		return nil, err
	}
	defer func() { srv.kill() }()
	cl := &apiClient{base: srv.base, token: token}
	a, err := agent.New(ctx, agent.Config{Server: srv.base, Token: token, Name: "bench", Ledger: filepath.Join(o.dir, "agent.db"), Settle: 100 * time.Millisecond,
		Folders: []agent.Folder{{Path: folder, Flow: "hyperspectral"}}, Logger: slog.New(slog.NewTextHandler(logf, nil))})
	if err != nil {
		return nil, err
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	t0 = time.Now()
	for _, p := range paths {
		if err := os.Rename(p, filepath.Join(folder, filepath.Base(p))); err != nil {
			return nil, err
		}
	}
	var ids []string
	for {
		var r catalog.Result
		if err := cl.do(ctx, http.MethodGet, "/api/v1/records?kind=hyperspectral&limit=1", nil, &r); err == nil && r.Total == o.records {
			break
		}
		if ctx.Err() != nil || time.Since(t0) > time.Duration(o.records)*2*time.Second+time.Minute {
			return nil, fmt.Errorf("ingest: not every file was published")
		}
		time.Sleep(200 * time.Millisecond)
	}
	a.Stop()
	fmt.Fprintf(out, "ingest: %d records published in %s (%.1f records/s)\n", o.records, secs(time.Since(t0)), float64(o.records)/time.Since(t0).Seconds())
	for off := 0; off < o.records; off += 200 {
		var r catalog.Result
		if err := cl.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/records?kind=hyperspectral&sort=oldest&limit=200&offset=%d", off), nil, &r); err != nil {
			return nil, err
		}
		for _, h := range r.Hits {
			ids = append(ids, h.ID)
		}
	}
	before := map[string]string{}
	for _, id := range ids {
		var vs []server.VersionView
		if err := cl.do(ctx, http.MethodGet, "/api/v1/records/"+id+"/versions", nil, &vs); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(vs[len(vs)-1])
		before[id] = string(b)
	}

	// The campaign, with the server killed half way.
	var c campaign.Campaign
	start := time.Now()
	if err := cl.do(ctx, http.MethodPost, "/api/v1/campaigns", campaign.Spec{Query: "kind:hyperspectral", Params: map[string]string{"min_significance": "6"},
		MaxInFlight: o.maxInFlight}, &c); err != nil {
		return nil, err
	}
	for {
		if err := cl.do(ctx, http.MethodGet, "/api/v1/campaigns/"+c.ID, nil, &c); err != nil {
			return nil, err
		}
		if c.State != campaign.StateRunning {
			break
		}
		if o.killAt > 0 && !res.Killed && float64(c.Settled()) >= o.killAt*float64(o.records) {
			res.Killed = true
			down := time.Now()
			srv.kill()
			fmt.Fprintf(out, "server killed (SIGKILL) with %d of %d records settled, %d runs under way\n", c.Settled(), c.Total, c.Counts[campaign.ItemStarted])
			if srv, err = startServerProc(ctx, data, addr, o.workers, logf); err != nil {
				return nil, err
			}
			res.Downtime = time.Since(down)
			fmt.Fprintf(out, "server restarted in %s\n", secs(res.Downtime))
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.Wall = time.Since(start)
	res.Done, res.Skipped, res.Failed = c.Counts[campaign.ItemDone], c.Counts[campaign.ItemSkipped], c.Counts[campaign.ItemFailed]

	// The ceiling, measured after the campaign on a quiet machine: the same
	// analyses alone, in the same worker processes, as many at once as the
	// server has analysis workers, with the same parameters (on a sample).
	sample := paths[:min(len(paths), max(20, o.records/5))]
	for i, p := range sample {
		sample[i] = filepath.Join(folder, filepath.Base(p)) // where the agent found them
	}
	t0 = time.Now()
	var wg sync.WaitGroup
	jobs := make(chan string)
	var aerr error
	var mu sync.Mutex
	for range o.workers {
		wg.Go(func() {
			for p := range jobs {
				if _, err := analysis.RunIsolated(ctx, workers, p, filepath.Join(o.dir, "alone", filepath.Base(p)),
					analysis.Options{Params: map[string]string{"min_significance": "6"}}, sandbox.Limits{}); err != nil {
					mu.Lock()
					aerr = err
					mu.Unlock()
				}
			}
		})
	}
	for _, p := range sample {
		jobs <- p
	}
	close(jobs)
	wg.Wait()
	if aerr != nil {
		return nil, aerr
	}
	res.AnalysisOnly = time.Since(t0) / time.Duration(len(sample))
	os.RemoveAll(filepath.Join(o.dir, "alone"))
	fmt.Fprintf(out, "analysis alone (%d worker processes, %d files, same parameters): %.2f records/s\n", o.workers, len(sample), 1/res.AnalysisOnly.Seconds())

	for _, id := range ids {
		var vs []server.VersionView
		if err := cl.do(ctx, http.MethodGet, "/api/v1/records/"+id+"/versions", nil, &vs); err != nil {
			return nil, err
		}
		res.Versions[len(vs)]++
		if b, _ := json.Marshal(vs[len(vs)-1]); string(b) != before[id] {
			res.OldVersionsChanged++
		}
	}
	var runs []server.RunView
	if err := cl.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/runs?limit=%d", 2*o.records+10), nil, &runs); err != nil {
		return nil, err
	}
	var active []time.Duration
	for _, r := range runs {
		if !r.Rerun || r.State != flow.StateSucceeded {
			continue
		}
		var full server.RunView
		if err := cl.do(ctx, http.MethodGet, "/api/v1/runs/"+r.ID, nil, &full); err != nil {
			return nil, err
		}
		var a float64
		for _, st := range full.Steps {
			a += st.ActiveMS
		}
		active = append(active, time.Duration(a*float64(time.Millisecond)))
	}
	var sum time.Duration
	for _, d := range active {
		sum += d
	}
	if len(active) > 0 {
		res.MeanActive = sum / time.Duration(len(active))
	}
	slices.Sort(active)
	rate := float64(o.records) / (res.Wall - res.Downtime).Seconds()
	alone := 1 / res.AnalysisOnly.Seconds()
	fmt.Fprintf(out, "\ncampaign: %d records in %s: %.2f records/s (%d done, %d skipped, %d failed); records by versions: %v; first versions changed: %d\n",
		o.records, secs(res.Wall), float64(o.records)/res.Wall.Seconds(), res.Done, res.Skipped, res.Failed, res.Versions, res.OldVersionsChanged)
	fmt.Fprintf(out, "step work per run (transfer re-verify, analyze, publish, notify; %d analyses at once): %s mean\n", o.workers, secs(res.MeanActive))
	fmt.Fprintf(out, "analysis alone, same worker processes and concurrency: %.2f records/s; campaign without the %s the server was down: %.2f records/s (%.2fx)\n",
		alone, secs(res.Downtime), rate, rate/alone)
	fmt.Fprintf(out, "campaign overhead per record (its wall time per record minus the analysis alone's): %s\n",
		secs((res.Wall-res.Downtime)/time.Duration(o.records)-res.AnalysisOnly))
	return res, nil
}

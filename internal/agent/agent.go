// Package agent runs on the instrument PC: it watches the acquisition
// folders, decides when a file is complete (HDF5 end-of-file address equals
// the size, nobody has it open for writing, size stable), hashes it once
// with SHA-256, records every step of its life in a local SQLite ledger,
// uploads it resumably, starts its flow on the server and waits for the
// outcome. Offline it keeps going and catches up later; killed at any point,
// it resumes from the ledger without losing a file or starting a flow twice.
package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/picoflow/picoflow/internal/checksum"
	"github.com/picoflow/picoflow/internal/emd/superblock"
	"github.com/picoflow/picoflow/internal/replicas"
	"github.com/picoflow/picoflow/internal/upload"
	"github.com/picoflow/picoflow/internal/watch"
)

// Folder is one watched folder and the flow its files go to.
type Folder struct {
	Path string `yaml:"path" json:"path"`
	// Flow is the server flow for files of this folder (default "emd").
	Flow string `yaml:"flow" json:"flow"`
	// Patterns select files by base name (default ["*.emd"]).
	Patterns []string `yaml:"patterns" json:"patterns"`
	// Instrument, Proposal and Sample describe this folder's files in their
	// records (Instrument overrides the agent's).
	Instrument string `yaml:"instrument" json:"instrument,omitempty"`
	Proposal   string `yaml:"proposal" json:"proposal,omitempty"`
	Sample     string `yaml:"sample" json:"sample,omitempty"`
	// Operator is who runs the microscope for this folder's files (their
	// records' creator); License the data's licence (an SPDX identifier such
	// as CC-BY-4.0). A sidecar file beside a data file overrides these.
	Operator string `yaml:"operator" json:"operator,omitempty"`
	License  string `yaml:"license" json:"license,omitempty"`
}

// Config configures an Agent.
type Config struct {
	// Server is the facility server's base URL, or several replicas' URLs
	// separated by commas: when one cannot be reached the agent goes on
	// with the next, uploads included.
	Server string `yaml:"server"`
	// Token is the agent's API token (keep it out of the YAML file: the
	// PICOFLOW_TOKEN environment variable overrides it).
	Token string `yaml:"token"`
	// Name identifies this agent (default: the host name).
	Name string `yaml:"name"`
	// Instrument names the microscope for the records.
	Instrument string   `yaml:"instrument"`
	Folders    []Folder `yaml:"folders"`
	// Ledger is the SQLite file of the agent's state (default
	// picoflow-agent.db in the working directory).
	Ledger string `yaml:"ledger"`
	// Settle is how long a file must stay unchanged (default 2s).
	Settle time.Duration `yaml:"settle"`
	// Rescan is the period of the full folder rescan (default 30s).
	Rescan time.Duration `yaml:"rescan"`
	// RecheckFailed is how often the runs of failed files are asked for
	// again, so a run an administrator retried at the server shows as done
	// here too (default 2m).
	RecheckFailed time.Duration `yaml:"recheck_failed"`
	// KeepConnection is how often the agent pings the server while it
	// waits for files, so the next file goes on an open connection
	// (default 45s, under the 90 s an idle connection is kept; negative:
	// never).
	KeepConnection time.Duration `yaml:"keep_connection"`
	// IncompleteAfter: a file whose HDF5 header still claims more bytes
	// than it has after this long is sent anyway, so the server records
	// why it cannot be read (default 10m).
	IncompleteAfter time.Duration `yaml:"incomplete_after"`
	// Uploads is how many files are sent at once (default 2).
	Uploads int `yaml:"uploads"`
	// MaxRate caps the upload rate of all files together ("400Mbit",
	// "50MB/s"; default none), so acquisition never competes with a full
	// link; RateSchedule changes it by time of day ("22:00-06:00
	// unlimited", "08:00-18:00 200Mbit"). MaxBytesPerSecond is the older
	// way to say MaxRate, in bytes per second.
	MaxRate           string   `yaml:"max_rate"`
	RateSchedule      []string `yaml:"rate_schedule"`
	MaxBytesPerSecond int64    `yaml:"max_bytes_per_second"`
	// NormalPriority keeps the agent at normal CPU and I/O priority; by
	// default it runs below the microscope's software.
	NormalPriority bool `yaml:"normal_priority"`
	// Compress says when uploads are zstd-compressed on the wire: auto
	// (when the file compresses and the link is slower than the
	// compressor; the default), never, always. Streams is how many
	// parallel streams carry one large file (0: chosen from the measured
	// round trip; 1: one stream always).
	Compress string `yaml:"compress"`
	Streams  int    `yaml:"streams"`

	Logger *slog.Logger `yaml:"-"`
	// OnChange, if set, is called after every state change of a file.
	OnChange func(Entry) `yaml:"-"`
}

// Agent is a running agent.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	ledger *ledger
	watch  *watch.Watcher
	api    *apiClient
	tus    *upload.Client
	// limiter paces every upload; maxRate (bytes/s) is its rate outside
	// the schedule's windows.
	limiter  *upload.Limiter
	maxRate  float64
	schedule []RateWindow
	kick     chan struct{}
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu       sync.Mutex
	inFlight map[int64]bool
	// held are the files intake holds back, as last written to the
	// ledger's waiting list (intake's goroutine only).
	held map[string]Waiting
}

// New opens the ledger; Start starts watching and sending.
func New(ctx context.Context, cfg Config) (*Agent, error) {
	if cfg.Server == "" {
		return nil, errors.New("agent: no server URL")
	}
	if len(cfg.Folders) == 0 {
		return nil, errors.New("agent: no folders to watch")
	}
	host, _ := os.Hostname()
	cfg.Name = cmp.Or(cfg.Name, host, "agent")
	cfg.Ledger = cmp.Or(cfg.Ledger, "picoflow-agent.db")
	cfg.IncompleteAfter = cmp.Or(cfg.IncompleteAfter, 10*time.Minute)
	cfg.Uploads = cmp.Or(cfg.Uploads, 2)
	for i := range cfg.Folders {
		f := &cfg.Folders[i]
		f.Flow = cmp.Or(f.Flow, "emd")
		if len(f.Patterns) == 0 {
			f.Patterns = []string{"*.emd"}
		}
		abs, err := filepath.Abs(f.Path)
		if err != nil {
			return nil, fmt.Errorf("agent: folder %q: %w", f.Path, err)
		}
		f.Path = abs
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Ledger), 0o755); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	l, err := openLedger(ctx, cfg.Ledger)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a := &Agent{cfg: cfg, log: cmp.Or(cfg.Logger, slog.Default()), ledger: l, kick: make(chan struct{}, 1), cancel: func() {}, inFlight: map[int64]bool{}, held: map[string]Waiting{}}
	servers, err := replicas.Parse(cfg.Server)
	if err != nil {
		l.close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	servers.Logger = a.log
	a.api = &apiClient{servers: servers, token: cfg.Token}
	if a.maxRate, err = upload.ParseRate(cfg.MaxRate); err != nil {
		l.close()
		return nil, fmt.Errorf("agent: max_rate: %w", err)
	}
	if a.maxRate == 0 && cfg.MaxBytesPerSecond > 0 {
		a.maxRate = float64(cfg.MaxBytesPerSecond)
	}
	if a.schedule, err = ParseSchedule(cfg.RateSchedule); err != nil {
		l.close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.limiter = upload.NewLimiter(a.maxRate)
	a.tus = &upload.Client{Replicas: servers, Token: cfg.Token, Limiter: a.limiter, Streams: cfg.Streams}
	switch cfg.Compress {
	case "", "auto":
	case "never":
		a.tus.Compress = upload.CompressNever
	case "always":
		a.tus.Compress = upload.CompressAlways
	default:
		l.close()
		return nil, fmt.Errorf("agent: compress %q: want auto, never or always", cfg.Compress)
	}
	var dirs []string
	for _, f := range cfg.Folders {
		dirs = append(dirs, f.Path)
	}
	a.watch = watch.New(watch.Config{Dirs: dirs, Settle: cfg.Settle, Rescan: cfg.Rescan, Logger: a.log, Match: func(p string) bool {
		_, ok := a.folder(p)
		return ok
	}})
	return a, nil
}

// Check validates the configuration before Start: every folder exists and
// can be read, and, when the server answers, it accepts the token and
// offers every folder's flow to it. An unreachable server is not an error
// (the agent queues files until it answers); a refused token or an unknown
// flow is, with what to do about it.
func (a *Agent) Check(ctx context.Context) error {
	var errs []error
	for _, f := range a.cfg.Folders {
		fi, err := os.Stat(f.Path)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("folder %s: %w", f.Path, err))
		case !fi.IsDir():
			errs = append(errs, fmt.Errorf("folder %s: not a directory", f.Path))
		default:
			if _, err := os.ReadDir(f.Path); err != nil {
				errs = append(errs, fmt.Errorf("folder %s: cannot be read: %w", f.Path, err))
			}
		}
	}
	flows, err := a.api.flows(ctx)
	switch {
	case errors.Is(err, upload.ErrUnauthorized):
		errs = append(errs, fmt.Errorf("the server refuses this agent's token (check PICOFLOW_TOKEN): %w", err))
	case err != nil:
		a.log.Warn("cannot check the flows now: the server does not answer; files wait until it does", "error", err)
	default:
		var names []string
		allowed := map[string]bool{}
		for _, fl := range flows {
			if fl.Allowed {
				names = append(names, fl.Name)
				allowed[fl.Name] = true
			}
		}
		for _, f := range a.cfg.Folders {
			if !allowed[f.Flow] {
				errs = append(errs, fmt.Errorf("folder %s: flow %q is not offered to this agent by the server (it may use: %s)", f.Path, f.Flow, strings.Join(names, ", ")))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("agent: configuration: %w", errors.Join(errs...))
	}
	return nil
}

// folder returns the folder a path belongs to, if it matches its patterns.
func (a *Agent) folder(path string) (*Folder, bool) {
	for i := range a.cfg.Folders {
		f := &a.cfg.Folders[i]
		rel, err := filepath.Rel(f.Path, path)
		if err != nil || rel == ".." || len(rel) > 2 && rel[:3] == ".."+string(filepath.Separator) {
			continue
		}
		for _, p := range f.Patterns {
			if ok, _ := filepath.Match(p, filepath.Base(path)); ok {
				return f, true
			}
		}
	}
	return nil, false
}

// Start begins watching and sending; files left mid-way by a previous run
// continue from their recorded state.
func (a *Agent) Start(ctx context.Context) error {
	ctx, a.cancel = context.WithCancel(ctx)
	if err := a.watch.Start(ctx); err != nil {
		a.cancel()
		return fmt.Errorf("agent: %w", err)
	}
	a.wg.Go(func() { a.intake(ctx) })
	a.wg.Go(func() { a.dispatch(ctx) })
	a.wg.Go(func() { a.recheckFailed(ctx) })
	a.wg.Go(func() { a.follow(ctx) })
	if a.cfg.KeepConnection >= 0 {
		a.wg.Go(func() { a.keepConnection(ctx) })
	}
	if !a.cfg.NormalPriority {
		if err := lowerPriority(); err != nil {
			a.log.Warn("cannot lower the agent's priority", "error", err)
		}
	}
	a.log.Info("agent started", "name", a.cfg.Name, "server", a.cfg.Server, "folders", len(a.cfg.Folders))
	return nil
}

// Stop stops and waits; the ledger keeps the state for the next start.
func (a *Agent) Stop() {
	a.cancel()
	a.watch.Stop()
	a.wg.Wait()
	a.ledger.close()
}

// Entries returns the newest files of the ledger.
func (a *Agent) Entries(ctx context.Context, limit int) ([]*Entry, error) {
	return a.ledger.list(ctx, limit)
}

func (a *Agent) changed(ctx context.Context, id int64) {
	select {
	case a.kick <- struct{}{}:
	default:
	}
	if a.cfg.OnChange == nil {
		return
	}
	if e, err := a.ledger.get(ctx, id); err == nil {
		a.cfg.OnChange(*e)
	}
}

// intake turns settled files into hashed ledger rows.
func (a *Agent) intake(ctx context.Context) {
	type waiting struct {
		f     watch.File
		since time.Time
	}
	incomplete := map[string]waiting{}
	recheck := time.NewTicker(cmp.Or(a.cfg.Settle, 2*time.Second))
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-a.watch.Files():
			w, seen := incomplete[f.Path]
			if a.admit(ctx, f, w.since) {
				delete(incomplete, f.Path)
			} else if !seen {
				incomplete[f.Path] = waiting{f, time.Now()}
			}
		case <-recheck.C:
			for p, w := range incomplete {
				fi, err := os.Stat(p)
				if err != nil {
					delete(incomplete, p)
					a.unhold(ctx, p)
					continue
				}
				f := watch.File{Path: p, Size: fi.Size(), ModTime: fi.ModTime()}
				if a.admit(ctx, f, w.since) {
					delete(incomplete, p)
				}
			}
		}
	}
}

// hold records that a file is held back and why (shown by status).
// The ledger is written only when the file's size or reason changed, not
// at every recheck.
func (a *Agent) hold(ctx context.Context, f watch.File, since time.Time, reason string) {
	if w, ok := a.held[f.Path]; ok && w.Size == f.Size && w.Reason == reason {
		return
	}
	if since.IsZero() {
		since = time.Now()
	}
	w := Waiting{Path: f.Path, Size: f.Size, Reason: reason, Since: since}
	if err := a.ledger.setWaiting(ctx, w); err != nil {
		a.log.Warn("record waiting file", "file", f.Path, "error", err)
		return
	}
	a.held[f.Path] = w
}

// unhold drops a file from the waiting list (sent, or gone).
func (a *Agent) unhold(ctx context.Context, path string) {
	delete(a.held, path)
	a.ledger.clearWaiting(ctx, path)
}

// admit checks that a settled file is complete, hashes it and records it.
// It returns false when the file should be checked again later.
func (a *Agent) admit(ctx context.Context, f watch.File, incompleteSince time.Time) bool {
	folder, ok := a.folder(f.Path)
	if !ok {
		return true
	}
	if known, err := a.ledger.known(ctx, f.Path, f.Size, f.ModTime); err != nil || known {
		return true
	}
	note := ""
	_, err := superblock.Check(f.Path, f.Size)
	switch {
	case errors.Is(err, superblock.ErrIncomplete):
		if incompleteSince.IsZero() || time.Since(incompleteSince) < a.cfg.IncompleteAfter {
			a.log.Debug("file not complete yet", "file", f.Path, "reason", err)
			a.hold(ctx, f, incompleteSince, fmt.Sprintf("not complete yet (%v); sent anyway after %s", err, a.cfg.IncompleteAfter))
			return false
		}
		note = fmt.Sprintf("sent incomplete after %s: %v", a.cfg.IncompleteAfter, err)
	case err != nil && !errors.Is(err, superblock.ErrFormat):
		a.log.Warn("check file", "file", f.Path, "error", err)
		return false
	case errors.Is(err, superblock.ErrFormat):
		// Not HDF5: send it anyway; the server's analysis says why it cannot
		// be read, where the operator and the portal can see it.
		note = err.Error()
	}
	if openForWrite(f.Path) {
		a.log.Debug("file still open for writing", "file", f.Path)
		a.hold(ctx, f, incompleteSince, "still open for writing")
		return false
	}
	sum, n, err := checksum.File(ctx, f.Path)
	if err != nil {
		a.log.Warn("hash file", "file", f.Path, "error", err)
		return false
	}
	if n != f.Size {
		return false // changed while hashing; the watcher reports it again
	}
	e, err := a.ledger.add(ctx, &Entry{Path: f.Path, Size: f.Size, ModTime: f.ModTime, SHA256: sum, Flow: folder.Flow, State: StateReady, Error: note})
	if err != nil {
		a.log.Error("record file", "file", f.Path, "error", err)
		return false
	}
	a.unhold(ctx, f.Path)
	if e != nil {
		a.log.Info("file ready", "file", f.Path, "bytes", f.Size, "sha256", sum[:12], "state", e.State)
		a.changed(ctx, e.ID)
	}
	return true
}

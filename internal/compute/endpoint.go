package compute

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/picoflow/picoflow/internal/checksum"
	"github.com/picoflow/picoflow/internal/replicas"
)

// RunFunc does a task's work: input is the file, products go to outDir;
// the result is sent back as JSON.
type RunFunc func(ctx context.Context, t *Task, input, outDir string) (result any, err error)

// Endpoint pulls tasks from a server and runs them.
type Endpoint struct {
	// Server is the server's base URL, or several replicas' URLs separated
	// by commas: on a connection error the endpoint moves on to the next.
	// Token is an API token with role:endpoint.
	Server, Token string
	// Name identifies this endpoint (default: the host name).
	Name string
	// Workers run tasks at once (default 1).
	Workers int
	// WorkDir holds inputs and products while a task runs (default: a
	// temporary directory).
	WorkDir string
	Run     RunFunc
	Logger  *slog.Logger
	// HTTP is the client (default: no overall timeout; claims long-poll).
	HTTP *http.Client
	// IdleExit, when set, stops the endpoint after this long without a
	// task (a batch block then ends and frees its node); Done closes.
	IdleExit time.Duration

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	done     chan struct{}
	lastWork atomicTime
	busy     atomic.Int32 // tasks running
	idle     atomic.Bool  // IdleExit reached: workers leave
	servers  *replicas.Set
}

type atomicTime struct {
	mu sync.Mutex
	t  time.Time
}

func (a *atomicTime) set(t time.Time) { a.mu.Lock(); a.t = t; a.mu.Unlock() }
func (a *atomicTime) get() time.Time  { a.mu.Lock(); defer a.mu.Unlock(); return a.t }

// Done is closed when the endpoint stopped by itself (IdleExit).
func (e *Endpoint) Done() <-chan struct{} { return e.done }

// Start starts the workers.
func (e *Endpoint) Start(ctx context.Context) error {
	if e.Run == nil || e.Server == "" {
		return errors.New("endpoint: no server or run function")
	}
	var err error
	if e.servers, err = replicas.Parse(e.Server); err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	host, _ := os.Hostname()
	e.Name = cmp.Or(e.Name, host)
	e.Workers = max(e.Workers, 1)
	if e.Logger == nil {
		e.Logger = slog.Default()
	}
	e.servers.Logger = e.Logger
	if e.HTTP == nil {
		e.HTTP = &http.Client{}
	}
	if e.WorkDir == "" {
		d, err := os.MkdirTemp("", "picoflow-endpoint-")
		if err != nil {
			return fmt.Errorf("endpoint: %w", err)
		}
		e.WorkDir = d
	}
	ctx, e.cancel = context.WithCancel(ctx)
	e.done = make(chan struct{})
	e.lastWork.set(time.Now())
	for range e.Workers {
		e.wg.Go(func() { e.loop(ctx) })
	}
	go func() {
		e.wg.Wait()
		if ctx.Err() == nil { // every worker left idle
			e.Logger.Info("endpoint idle, exiting", "idle", e.IdleExit)
			close(e.done)
		}
	}()
	e.Logger.Info("endpoint started", "name", e.Name, "server", e.Server, "workers", e.Workers)
	return nil
}

// Stop stops claiming, cancels running tasks (their leases lapse and the
// server gives them to another endpoint) and waits.
func (e *Endpoint) Stop() {
	if e.cancel != nil {
		e.cancel()
	}
	e.wg.Wait()
}

// claimWait is how long one claim waits on the server for a task.
const claimWait = 30 * time.Second

// loop claims and runs tasks until ctx ends, or, with IdleExit, until the
// endpoint has been idle that long. A claim is never cancelled for being
// idle (the server might have handed it a task just then, which would
// wait for its lease to lapse): it waits at most the idle time left.
func (e *Endpoint) loop(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		wait := claimWait
		if e.IdleExit > 0 {
			// Once idle, no worker claims again; a claim under way
			// still runs what it gets.
			left := e.IdleExit - time.Since(e.lastWork.get())
			if e.idle.Load() || left <= 0 && e.busy.Load() == 0 {
				e.idle.Store(true)
				return
			}
			wait = min(wait, max(left, time.Second))
		}
		t, err := e.claim(ctx, wait)
		if err != nil {
			if ctx.Err() == nil {
				e.Logger.Warn("claim", "error", err)
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 30*time.Second)
			}
			continue
		}
		backoff = time.Second
		if t != nil {
			e.busy.Add(1)
			e.lastWork.set(time.Now())
			e.do(ctx, t)
			e.lastWork.set(time.Now())
			e.busy.Add(-1)
		}
	}
}

// url is a server path with the endpoint's name; call prefixes a server.
func (e *Endpoint) url(path string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("endpoint", e.Name)
	return path + "?" + q.Encode()
}

// send sends one request to the current server; when the server cannot be
// reached it tries the next replica (each once), rewinding body.
func (e *Endpoint) send(ctx context.Context, method, path string, body io.ReadSeeker) (*http.Response, error) {
	var resp *http.Response
	err := e.servers.Do(ctx, func(base string) error {
		var rd io.Reader
		var size int64
		if body != nil {
			// The transport closes a request's body after a failure; the
			// body is kept open for the next replica and sent with its length.
			var err error
			if size, err = body.Seek(0, io.SeekEnd); err != nil {
				return err
			}
			if _, err := body.Seek(0, io.SeekStart); err != nil {
				return err
			}
			rd = io.NopCloser(body)
			if ra, ok := body.(io.ReaderAt); ok {
				// A reader of its own: a failed attempt's transport may
				// still be reading the last one.
				rd = io.NopCloser(io.NewSectionReader(ra, 0, size))
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			return err
		}
		if body != nil {
			req.ContentLength = size
			if size == 0 {
				req.Body = http.NoBody
			}
		}
		req.Header.Set("Authorization", "Bearer "+e.Token)
		resp, err = e.HTTP.Do(req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (e *Endpoint) call(ctx context.Context, method, u string, body io.ReadSeeker, out any) (int, error) {
	resp, err := e.send(ctx, method, u, body)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return resp.StatusCode, fmt.Errorf("%s %s: %s %s", method, resp.Request.URL.Path, resp.Status, bytes.TrimSpace(msg))
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode, nil
}

func (e *Endpoint) claim(ctx context.Context, wait time.Duration) (*Task, error) {
	var t Task
	status, err := e.call(ctx, http.MethodPost, e.url("/api/v1/compute/claim", url.Values{"wait": {wait.String()}}), nil, &t)
	if err != nil || status == http.StatusNoContent {
		return nil, err
	}
	return &t, nil
}

// do runs one task: input (shared file system or download, checked), a
// heartbeat while it runs, products uploaded, outcome reported.
func (e *Endpoint) do(ctx context.Context, t *Task) {
	log := e.Logger.With("task", t.ID, "run_id", t.RunID, "file", t.Input.FileName)
	dir := filepath.Join(e.WorkDir, t.ID)
	defer os.RemoveAll(dir)
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Heartbeats keep the lease; losing it (the server gave the task away)
	// cancels the work.
	every := max(time.Until(t.Lease)/3, 200*time.Millisecond)
	hb := sync.WaitGroup{}
	hb.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-tctx.Done():
				return
			case <-tick.C:
				if status, err := e.call(tctx, http.MethodPost, e.url("/api/v1/compute/tasks/"+t.ID+"/heartbeat", nil), nil, nil); err != nil && status == http.StatusNotFound {
					log.Warn("lease lost", "error", err)
					cancel()
					return
				}
			}
		}
	})
	defer hb.Wait()
	defer cancel()
	rctx := tctx
	limit := time.Duration(t.Input.Timeout * float64(time.Second))
	if limit > 0 {
		var rcancel context.CancelFunc
		rctx, rcancel = context.WithTimeout(tctx, limit)
		defer rcancel()
	}
	result, runErr := e.runTask(rctx, t, dir)
	if tctx.Err() != nil && ctx.Err() != nil {
		return // stopping: the lease lapses and the task goes elsewhere
	}
	if tctx.Err() == nil && errors.Is(rctx.Err(), context.DeadlineExceeded) {
		result, runErr = nil, fmt.Errorf("timed out after %s on endpoint %s", limit, e.Name)
	}
	body := map[string]any{"result": result}
	if runErr != nil {
		body["error"] = runErr.Error()
		log.Warn("task failed", "error", runErr)
	} else if err := e.sendProducts(tctx, t, filepath.Join(dir, "out")); err != nil {
		body["result"], body["error"] = nil, "send products: "+err.Error()
	}
	b, _ := json.Marshal(body)
	if _, err := e.call(ctx, http.MethodPost, e.url("/api/v1/compute/tasks/"+t.ID+"/complete", nil), bytes.NewReader(b), nil); err != nil {
		log.Warn("report", "error", err)
		return
	}
	log.Info("task done", "ok", runErr == nil)
}

func (e *Endpoint) runTask(ctx context.Context, t *Task, dir string) (any, error) {
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o750); err != nil {
		return nil, err
	}
	input := t.Input.Path
	if fi, err := os.Stat(input); err != nil || fi.Size() != t.Input.Size {
		// Not on a shared file system: stage it over HTTP.
		input = filepath.Join(dir, "input", filepath.Base(t.Input.FileName))
		if err := e.download(ctx, t, input); err != nil {
			return nil, fmt.Errorf("stage input: %w", err)
		}
	}
	if sum, _, err := checksum.File(ctx, input); err != nil || sum != t.Input.SHA256 {
		return nil, fmt.Errorf("input %s: checksum %s, want %s (%v)", t.Input.FileName, sum, t.Input.SHA256, err)
	}
	return e.Run(ctx, t, input, out)
}

func (e *Endpoint) download(ctx context.Context, t *Task, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return err
	}
	resp, err := e.send(ctx, http.MethodGet, e.url("/api/v1/compute/tasks/"+t.ID+"/input", nil), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download: %s", resp.Status)
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sendProducts sends the products, trying again over a few seconds when
// the network or the server fails (an analysis is not redone for a blip).
func (e *Endpoint) sendProducts(ctx context.Context, t *Task, dir string) error {
	var err error
	for wait := time.Second; ; wait *= 2 {
		if err = e.uploadProducts(ctx, t, dir); err == nil || wait > 8*time.Second {
			return err
		}
		e.Logger.Warn("send products, trying again", "task", t.ID, "in", wait, "error", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func (e *Endpoint) uploadProducts(ctx context.Context, t *Task, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, en := range entries {
		if !en.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, en.Name()))
		if err != nil {
			return err
		}
		_, err = e.call(ctx, http.MethodPut, e.url("/api/v1/compute/tasks/"+t.ID+"/products/"+url.PathEscape(en.Name()), nil), f, nil)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

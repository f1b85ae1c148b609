package flow

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/picoflow/picoflow/internal/store"
)

// StepFunc does the work of one step type. It must be idempotent: a crash
// after the work but before the step is recorded runs it again. Wrap
// ErrPermanent for failures that retrying cannot fix. The returned output is
// stored as JSON and passed to later steps; a "record_id" field in it is
// recorded on the run.
type StepFunc func(ctx context.Context, s *StepRun) (output any, err error)

// StepType is an implementation of a step type.
type StepType struct {
	Func StepFunc
	// Queue runs the step on a named River queue with its own concurrency
	// (analysis is CPU-bound; transfers and publishing are not). Empty means
	// the default queue.
	Queue string
	// Check, when set, checks a step's parameters when the flows are
	// loaded, so a mistake is reported at start, not by every run.
	Check func(params map[string]any) error
}

// StepRun is what a step function gets.
type StepRun struct {
	Run     *Run
	Def     StepDef
	Attempt int
	// Outputs holds the outputs of the run's finished steps, by step name.
	Outputs map[string]json.RawMessage
	Log     *slog.Logger
}

// Queue names.
const (
	QueueDefault = river.QueueDefault
	QueueAnalyze = "analyze"
)

// EngineConfig configures an Engine.
type EngineConfig struct {
	DB    *store.DB
	Flows Config
	// Types are the step implementations by type name.
	Types map[string]StepType
	// Workers is the concurrency per queue (default: 8 for the default
	// queue, 2 for analyze).
	Workers map[string]int
	Logger  *slog.Logger
	// PollInterval is how often idle workers look for jobs they were not
	// woken for (default 1s): a fallback, since every enqueue wakes its
	// queue at once.
	PollInterval time.Duration
	// RetryBase is the first retry delay, doubling per attempt up to a
	// minute (default 1s).
	RetryBase time.Duration
	// RescueAfter is how long a step may look stuck (its worker died)
	// before it is run again (default: its timeout plus a minute).
	RescueAfter time.Duration
}

// Engine runs flows.
type Engine struct {
	rescueAfter time.Duration
	stopRescue  context.CancelFunc
	rescueDone  chan struct{}
	db          *store.DB
	complete    func(ctx context.Context, tx *sql.Tx, job *river.Job[stepArgs]) error
	flows       Config
	types       map[string]StepType
	client      *river.Client[*sql.Tx]
	events      *Broker
	log         *slog.Logger
	retry       time.Duration
}

// stepArgs is the River job of one step of one run.
type stepArgs struct {
	RunID string `json:"run_id"`
	Flow  string `json:"flow"`
	Index int    `json:"index"`
}

func (stepArgs) Kind() string { return "picoflow_step" }

// pollOnly runs River's SQLite driver without its listener. The listener
// is a table polled every 50 ms, so every hand-off between steps would wait
// for it; without it, River wakes a queue's fetcher in-process whenever a job
// is inserted outside a transaction (see wake), and polls at PollInterval as
// a fallback. Only one process works a SQLite database, so nothing is lost.
type pollOnly struct{ *riversqlite.Driver }

func (pollOnly) SupportsListener() bool { return false }

// wakeArgs is an empty job inserted outside any transaction right after a
// step is enqueued inside one. River does not notice jobs inserted in a
// transaction until its next poll; a plain insert wakes the queue's fetcher
// at once, so the hand-off between steps takes milliseconds, not a poll
// interval. If the wake insert is lost, the poll still finds the step.
type wakeArgs struct{}

func (wakeArgs) Kind() string { return "picoflow_wake" }

type wakeWorker struct{ river.WorkerDefaults[wakeArgs] }

func (wakeWorker) Work(context.Context, *river.Job[wakeArgs]) error { return nil }

// wake pokes a queue after a transaction that enqueued a step committed.
func (e *Engine) wake(ctx context.Context, queue string) {
	if _, err := e.client.Insert(ctx, wakeArgs{}, &river.InsertOpts{Queue: queue, MaxAttempts: 1}); err != nil && ctx.Err() == nil {
		e.log.Debug("wake queue", "queue", queue, "error", err)
	}
}

// New builds an engine; Start starts its workers.
func New(cfg EngineConfig) (*Engine, error) {
	known := map[string]bool{}
	for k := range cfg.Types {
		known[k] = true
	}
	flows := cfg.Flows
	if err := flows.Validate(known); err != nil {
		return nil, err
	}
	checks := map[string]func(map[string]any) error{}
	for k, t := range cfg.Types {
		checks[k] = t.Check
	}
	if err := flows.CheckParams(checks); err != nil {
		return nil, err
	}
	e := &Engine{
		db:     cfg.DB,
		flows:  flows,
		types:  cfg.Types,
		events: NewBroker(),
		log:    cmp.Or(cfg.Logger, slog.Default()),
		retry:  cmp.Or(cfg.RetryBase, time.Second),
	}
	maxTimeout := time.Minute
	for _, f := range flows.Flows {
		for _, s := range f.Steps {
			maxTimeout = max(maxTimeout, time.Duration(s.Timeout))
		}
	}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &stepWorker{e: e}); err != nil {
		return nil, fmt.Errorf("flow engine: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &wakeWorker{}); err != nil {
		return nil, fmt.Errorf("flow engine: %w", err)
	}
	queues := map[string]river.QueueConfig{
		QueueDefault: {MaxWorkers: cmp.Or(cfg.Workers[QueueDefault], 8)},
		QueueAnalyze: {MaxWorkers: cmp.Or(cfg.Workers[QueueAnalyze], 2)},
	}
	for q, n := range cfg.Workers {
		if _, ok := queues[q]; !ok && n > 0 {
			queues[q] = river.QueueConfig{MaxWorkers: n}
		}
	}
	var driver riverdriver.Driver[*sql.Tx] = pollOnly{riversqlite.New(cfg.DB.Write)}
	e.complete = func(ctx context.Context, tx *sql.Tx, job *river.Job[stepArgs]) error {
		_, err := river.JobCompleteTx[pollOnly](ctx, tx, job)
		return err
	}
	if cfg.DB.Postgres {
		// Several servers may share a PostgreSQL database. Jobs are written
		// through database/sql (in the application's transactions); River's
		// pgx listener hears the NOTIFY each insert sends, so a step
		// enqueued by one server wakes the others' fetchers at commit.
		driver = riverdatabasesql.New(cfg.DB.Write)
		if cfg.DB.Pgx != nil {
			driver = riverdatabasesql.NewWithPgxListener(cfg.DB.Write, cfg.DB.Pgx)
		}
		e.complete = func(ctx context.Context, tx *sql.Tx, job *river.Job[stepArgs]) error {
			_, err := river.JobCompleteTx[*riverdatabasesql.Driver](ctx, tx, job)
			return err
		}
	}
	e.rescueAfter = cmp.Or(cfg.RescueAfter, maxTimeout+time.Minute)
	client, err := river.NewClient[*sql.Tx](driver, &river.Config{
		Queues:               queues,
		Workers:              workers,
		Logger:               slog.New(warnOnly{e.log.With("component", "river").Handler()}),
		FetchCooldown:        2 * time.Millisecond,
		FetchPollInterval:    cmp.Or(cfg.PollInterval, time.Second),
		JobTimeout:           -1, // per step, from the flow definition
		RescueStuckJobsAfter: cmp.Or(cfg.RescueAfter, maxTimeout+time.Minute),
		MaxAttempts:          3,
	})
	if err != nil {
		return nil, fmt.Errorf("flow engine: %w", err)
	}
	e.client = client
	return e, nil
}

// Start starts the workers; runs left unfinished by a previous process are
// picked up (River rescues steps whose worker died).
func (e *Engine) Start(ctx context.Context) error {
	// One process works a SQLite database, so a step left running belongs
	// to a process that died (kill -9, power cut): run it again now rather
	// than after River's stuck-job timeout, which must exceed the longest
	// step timeout. (On PostgreSQL other servers' steps run too: River's
	// rescuer handles those of a dead server.)
	if !e.db.Postgres {
		res, err := e.db.Write.ExecContext(ctx, `UPDATE river_job SET state = 'available', scheduled_at = datetime('now', 'subsec')
			WHERE state = 'running' AND kind = ?`, stepArgs{}.Kind())
		if err != nil {
			return fmt.Errorf("flow engine start: recover steps: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			e.log.Warn("re-running steps interrupted by a crash", "steps", n)
		}
	}
	if err := e.client.Start(ctx); err != nil {
		return fmt.Errorf("flow engine start: %w", err)
	}
	if e.db.Postgres {
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		e.stopRescue, e.rescueDone = cancel, make(chan struct{})
		go e.rescueLoop(rctx)
	}
	return nil
}

// rescueLoop re-queues steps that have been running longer than
// rescueAfter: their server died (each step is cancelled by its own
// timeout, which rescueAfter exceeds, on a server that lives). Every server
// sharing the database runs it; the update is idempotent.
func (e *Engine) rescueLoop(ctx context.Context) {
	defer close(e.rescueDone)
	t := time.NewTicker(min(max(e.rescueAfter/3, time.Second), 30*time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res, err := e.db.Write.ExecContext(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now()
			WHERE state = 'running' AND kind = $1 AND attempted_at < now() - make_interval(secs => $2)`, stepArgs{}.Kind(), e.rescueAfter.Seconds())
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("rescue steps", "error", err)
			}
			continue
		}
		if n, _ := res.RowsAffected(); n > 0 {
			e.log.Warn("re-running steps whose server stopped", "steps", n)
			for _, q := range []string{QueueDefault, QueueAnalyze} {
				e.wake(ctx, q)
			}
		}
	}
}

// Stop lets running steps finish for up to ctx's deadline, then cancels
// them (they are retried on the next start).
func (e *Engine) Stop(ctx context.Context) error {
	if e.stopRescue != nil {
		e.stopRescue()
		<-e.rescueDone
		e.stopRescue = nil
	}
	if err := e.client.Stop(ctx); err != nil {
		if err := e.client.StopAndCancel(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("flow engine stop: %w", err)
		}
	}
	return nil
}

// Events returns the broker of run and step events.
func (e *Engine) Events() *Broker { return e.events }

// Flows returns the configured flows.
func (e *Engine) Flows() Config { return e.flows }

// RunSpec describes a new run.
type RunSpec struct {
	Flow       string
	SHA256     string
	FileName   string
	Size       int64
	Agent      string
	Instrument string
	UploadID   string
	// Received is when the file started to arrive (the upload's creation);
	// the run and its first step start then. Zero means now.
	Received time.Time
	Meta     map[string]any
	// Readers may read the run besides administrators: the sender and the
	// record's access list.
	Readers []string
	// RerunKey, for a run that analyses stored content again, makes it
	// one of its own: one run per (flow, content, key); StoredPath is
	// where that content is kept (there is no upload).
	RerunKey   string
	StoredPath string
}

func now() time.Time { return time.Now().UTC() }

// times returns now, when the file started to arrive (never after now) and
// the run's metadata as JSON.
func (spec RunSpec) times() (t, recv time.Time, meta []byte, err error) {
	t = now()
	recv = spec.Received
	if recv.IsZero() || recv.After(t) {
		recv = t
	}
	if spec.Meta == nil {
		spec.Meta = map[string]any{}
	}
	meta, err = json.Marshal(spec.Meta)
	return t, recv, meta, err
}

func newID(t time.Time) string {
	b := make([]byte, 5)
	rand.Read(b)
	return fmt.Sprintf("r%011x%s", t.UnixMilli(), hex.EncodeToString(b))
}

// StartRun creates a run and enqueues its first step, in one transaction.
// A run of the same flow for the same content that already exists is
// returned with created false and nothing is enqueued.
func (e *Engine) StartRun(ctx context.Context, spec RunSpec) (*Run, bool, error) {
	def, ok := e.flows.Flow(spec.Flow)
	if !ok {
		return nil, false, fmt.Errorf("start run: flow %q: %w", spec.Flow, ErrNotFound)
	}
	if len(spec.SHA256) != 64 {
		return nil, false, fmt.Errorf("start run: %w: sha256 must be 64 hex digits", ErrPermanent)
	}
	t, recv, meta, err := spec.times()
	if err != nil {
		return nil, false, fmt.Errorf("start run: %w", err)
	}
	id := newID(t)
	tx, err := e.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, fmt.Errorf("start run: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO run (id, flow, sha256, file_name, size, agent, instrument, upload_id, state, created_at, updated_at, meta, rerun_key, stored_path)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (flow, sha256, rerun_key) DO NOTHING`,
		id, spec.Flow, spec.SHA256, spec.FileName, spec.Size, spec.Agent, spec.Instrument, spec.UploadID, StateQueued, recv.UnixMicro(), t.UnixMicro(), string(meta),
		spec.RerunKey, spec.StoredPath)
	if err != nil {
		return nil, false, fmt.Errorf("start run: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		tx.Rollback()
		r, err := e.RunByKey(ctx, spec.Flow, spec.SHA256, spec.RerunKey)
		return r, false, err
	}
	if err := addReaders(ctx, tx, id, spec.Readers); err != nil {
		return nil, false, fmt.Errorf("start run: %w", err)
	}
	for i, s := range def.Steps {
		state, ready, started := StatePending, any(nil), any(nil)
		if i == 0 {
			state, ready, started = StateQueued, t.UnixMicro(), recv.UnixMicro()
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO step (run_id, idx, name, kind, state, ready_at, started_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, i, s.Name, s.Type, state, ready, started); err != nil {
			return nil, false, fmt.Errorf("start run: %w", err)
		}
	}
	if _, err := e.client.InsertTx(ctx, tx, stepArgs{RunID: id, Flow: spec.Flow, Index: 0}, e.insertOpts(def.Steps[0])); err != nil {
		return nil, false, fmt.Errorf("start run: enqueue: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, false, fmt.Errorf("start run: %w", err)
	}
	e.queued(ctx, Event{RunID: id, Flow: spec.Flow, FileName: spec.FileName, State: StateQueued, Time: t}, def.Steps[0])
	r, err := e.Run(ctx, id)
	return r, true, err
}

func (e *Engine) insertOpts(s StepDef) *river.InsertOpts {
	return &river.InsertOpts{MaxAttempts: s.Attempts, Queue: cmp.Or(e.types[s.Type].Queue, QueueDefault)}
}

// ErrNotFailed means a run cannot be restarted because it has not failed.
var ErrNotFailed = errors.New("run has not failed")

// Restart runs a failed run again from its first step on a new upload of
// the same content (spec's UploadID, FileName, Size, Agent, Instrument,
// Received, Meta and Readers replace the run's). A run that is
// not failed is left alone (ErrNotFailed). Earlier step outputs are
// dropped: they described the failed attempt.
func (e *Engine) Restart(ctx context.Context, id string, spec RunSpec) (*Run, error) {
	r, err := e.Run(ctx, id)
	if err != nil {
		return nil, err
	}
	def, ok := e.flows.Flow(r.Flow)
	if !ok {
		return nil, fmt.Errorf("restart run %s: flow %q: %w", id, r.Flow, ErrNotFound)
	}
	t, recv, meta, err := spec.times()
	if err != nil {
		return nil, fmt.Errorf("restart run %s: %w", id, err)
	}
	tx, err := e.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("restart run %s: %w", id, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE run SET state = ?, error = '', finished_at = NULL, updated_at = ?, created_at = ?, upload_id = ?,
		file_name = ?, size = ?, agent = ?, instrument = ?, meta = ?, stored_path = '', record_id = '' WHERE id = ? AND state = ?`,
		StateQueued, t.UnixMicro(), recv.UnixMicro(), spec.UploadID, spec.FileName, spec.Size, spec.Agent, spec.Instrument, string(meta), id, StateFailed)
	if err != nil {
		return nil, fmt.Errorf("restart run %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return r, fmt.Errorf("restart run %s (%s): %w", id, r.State, ErrNotFailed)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE step SET state = ?, error = '', attempts = 0, ready_at = NULL, started_at = NULL, finished_at = NULL,
		active_us = 0, output = '{}' WHERE run_id = ?`, StatePending, id); err != nil {
		return nil, fmt.Errorf("restart run %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE step SET state = ?, ready_at = ?, started_at = ? WHERE run_id = ? AND idx = 0`, StateQueued, t.UnixMicro(), recv.UnixMicro(), id); err != nil {
		return nil, fmt.Errorf("restart run %s: %w", id, err)
	}
	// The run now belongs to whoever sent these bytes: the readers of the
	// failed attempt (another sender, perhaps one that only claimed the
	// content) no longer see it.
	if _, err := tx.ExecContext(ctx, `DELETE FROM run_reader WHERE run_id = ?`, id); err != nil {
		return nil, fmt.Errorf("restart run %s: %w", id, err)
	}
	if err := addReaders(ctx, tx, id, spec.Readers); err != nil {
		return nil, fmt.Errorf("restart run %s: %w", id, err)
	}
	if _, err := e.client.InsertTx(ctx, tx, stepArgs{RunID: id, Flow: r.Flow, Index: 0}, e.insertOpts(def.Steps[0])); err != nil {
		return nil, fmt.Errorf("restart run %s: enqueue: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("restart run %s: %w", id, err)
	}
	e.queued(ctx, Event{RunID: id, Flow: r.Flow, FileName: spec.FileName, State: StateQueued, Time: t}, def.Steps[0])
	return e.Run(ctx, id)
}

// Retry restarts a failed run from its failed step.
func (e *Engine) Retry(ctx context.Context, id string) (*Run, error) {
	r, err := e.Run(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.State != StateFailed {
		return r, nil
	}
	def, ok := e.flows.Flow(r.Flow)
	if !ok {
		return nil, fmt.Errorf("retry run %s: flow %q: %w", id, r.Flow, ErrNotFound)
	}
	idx := 0
	for _, s := range r.Steps {
		if s.State == StateFailed {
			idx = s.Index
			break
		}
	}
	t := now()
	tx, err := e.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("retry run %s: %w", id, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE run SET state = ?, error = '', finished_at = NULL, updated_at = ? WHERE id = ?`, StateQueued, t.UnixMicro(), id); err != nil {
		return nil, fmt.Errorf("retry run %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE step SET state = ?, error = '', ready_at = ?, attempts = 0 WHERE run_id = ? AND idx = ?`, StateQueued, t.UnixMicro(), id, idx); err != nil {
		return nil, fmt.Errorf("retry run %s: %w", id, err)
	}
	if _, err := e.client.InsertTx(ctx, tx, stepArgs{RunID: id, Flow: r.Flow, Index: idx}, e.insertOpts(def.Steps[idx])); err != nil {
		return nil, fmt.Errorf("retry run %s: enqueue: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("retry run %s: %w", id, err)
	}
	e.queued(ctx, Event{RunID: id, Flow: r.Flow, FileName: r.FileName, State: StateQueued, Time: t}, def.Steps[idx])
	return e.Run(ctx, id)
}

// Wait blocks until the run is finished or ctx is done, and returns its
// latest state either way.
func (e *Engine) Wait(ctx context.Context, id string) (*Run, error) {
	ch, cancel := e.events.Subscribe(64)
	defer cancel()
	for {
		r, err := e.Run(ctx, id)
		if err != nil || r.Terminal() {
			return r, err
		}
		// Events wake the wait at once; the periodic re-read covers events
		// this process does not see (another server on the same database).
		select {
		case <-ctx.Done():
			return r, nil
		case <-time.After(2 * time.Second):
		case ev := <-ch:
			for ev.RunID != id || ev.Step != "" {
				select {
				case ev = <-ch:
					continue
				case <-time.After(2 * time.Second):
				case <-ctx.Done():
					return e.Run(context.WithoutCancel(ctx), id)
				}
				break
			}
		}
	}
}

// stepWorker runs every step job.
type stepWorker struct {
	river.WorkerDefaults[stepArgs]
	e *Engine
}

func (w *stepWorker) Timeout(job *river.Job[stepArgs]) time.Duration {
	if def, ok := w.e.flows.Flow(job.Args.Flow); ok && job.Args.Index < len(def.Steps) {
		return time.Duration(def.Steps[job.Args.Index].Timeout)
	}
	return 10 * time.Minute
}

func (w *stepWorker) NextRetry(job *river.Job[stepArgs]) time.Time {
	d := time.Duration(float64(w.e.retry) * math.Pow(2, float64(max(job.Attempt-1, 0))))
	return time.Now().Add(min(d, time.Minute))
}

func (w *stepWorker) Work(ctx context.Context, job *river.Job[stepArgs]) error {
	return w.e.work(ctx, job)
}

func (e *Engine) work(ctx context.Context, job *river.Job[stepArgs]) error {
	a := job.Args
	run, err := e.Run(ctx, a.RunID)
	if errors.Is(err, ErrNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	def, ok := e.flows.Flow(run.Flow)
	if !ok || a.Index >= len(def.Steps) || a.Index >= len(run.Steps) {
		return river.JobCancel(fmt.Errorf("run %s step %d: flow %q: %w", run.ID, a.Index, run.Flow, ErrNotFound))
	}
	st := run.Steps[a.Index]
	if run.Terminal() || st.State == StateSucceeded {
		return nil // already recorded; a duplicate delivery
	}
	sd := def.Steps[a.Index]
	log := e.log.With("run_id", run.ID, "flow", run.Flow, "step", sd.Name, "attempt", job.Attempt)
	// The step starts when River hands the job to this worker.
	start := now()
	if job.AttemptedAt != nil && job.AttemptedAt.Before(start) && start.Sub(*job.AttemptedAt) < time.Minute {
		start = job.AttemptedAt.UTC()
	}
	attemptStart := start
	if st.Started != nil && st.Attempts == 0 && st.Started.Before(start) {
		attemptStart = *st.Started // the transfer began before the job (the upload)
	}
	if _, err := e.db.Write.ExecContext(ctx, `UPDATE step SET state = ?, attempts = ?, started_at = COALESCE(started_at, ?) WHERE run_id = ? AND idx = ?`,
		StateRunning, job.Attempt, start.UnixMicro(), run.ID, a.Index); err != nil {
		return fmt.Errorf("run %s: mark step running: %w", run.ID, err)
	}
	if _, err := e.db.Write.ExecContext(ctx, `UPDATE run SET state = ?, updated_at = ? WHERE id = ?`, StateRunning, start.UnixMicro(), run.ID); err != nil {
		return fmt.Errorf("run %s: mark running: %w", run.ID, err)
	}
	e.events.Publish(Event{RunID: run.ID, Flow: run.Flow, FileName: run.FileName, Step: sd.Name, State: StateRunning, Time: start})

	outputs := map[string]json.RawMessage{}
	for _, s := range run.Steps {
		if s.State == StateSucceeded {
			outputs[s.Name] = s.Output
		}
	}
	out, stepErr := e.call(ctx, &StepRun{Run: run, Def: sd, Attempt: job.Attempt, Outputs: outputs, Log: log})
	end := now()
	active := end.Sub(attemptStart)
	if stepErr != nil {
		return e.fail(ctx, job, run, sd, active, end, stepErr, log)
	}
	if w, ok := out.(Wait); ok {
		return e.wait(ctx, job, run, sd, w, log)
	}
	outJSON, err := json.Marshal(out)
	if err != nil {
		return e.fail(ctx, job, run, sd, active, end, fmt.Errorf("encode output: %w: %w", ErrPermanent, err), log)
	}
	tx, err := e.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("run %s: %w", run.ID, err)
	}
	defer tx.Rollback()
	next, err := e.advance(ctx, tx, run, def, a.Index, outJSON, active, end)
	if err != nil {
		return err
	}
	if err := e.complete(ctx, tx, job); err != nil {
		return fmt.Errorf("run %s: complete job: %w", run.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("run %s: %w", run.ID, err)
	}
	log.Debug("step done", "active_ms", active.Milliseconds())
	e.advanced(ctx, run, def, sd, next, active, end)
	return nil
}

// advance records step idx as succeeded with its output and enqueues the
// next step, or finishes the run, in tx. It returns the next index.
func (e *Engine) advance(ctx context.Context, tx *sql.Tx, run *Run, def *Definition, idx int, outJSON []byte, active time.Duration, end time.Time) (int, error) {
	var rec struct {
		RecordID string `json:"record_id"`
	}
	json.Unmarshal(outJSON, &rec)
	if _, err := tx.ExecContext(ctx, `UPDATE step SET state = ?, finished_at = ?, active_us = active_us + ?, error = '', output = ? WHERE run_id = ? AND idx = ?`,
		StateSucceeded, end.UnixMicro(), active.Microseconds(), string(outJSON), run.ID, idx); err != nil {
		return 0, fmt.Errorf("run %s: record step: %w", run.ID, err)
	}
	next := idx + 1
	if next < len(def.Steps) {
		if _, err := tx.ExecContext(ctx, `UPDATE step SET state = ?, ready_at = ? WHERE run_id = ? AND idx = ?`, StateQueued, end.UnixMicro(), run.ID, next); err != nil {
			return 0, fmt.Errorf("run %s: queue next step: %w", run.ID, err)
		}
		if _, err := e.client.InsertTx(ctx, tx, stepArgs{RunID: run.ID, Flow: run.Flow, Index: next}, e.insertOpts(def.Steps[next])); err != nil {
			return 0, fmt.Errorf("run %s: enqueue next step: %w", run.ID, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE run SET state = ?, updated_at = ?, record_id = CASE WHEN ? != '' THEN ? ELSE record_id END WHERE id = ?`,
			StateRunning, end.UnixMicro(), rec.RecordID, rec.RecordID, run.ID); err != nil {
			return 0, fmt.Errorf("run %s: %w", run.ID, err)
		}
		return next, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE run SET state = ?, updated_at = ?, finished_at = ?, error = '', record_id = CASE WHEN ? != '' THEN ? ELSE record_id END WHERE id = ?`,
		StateSucceeded, end.UnixMicro(), end.UnixMicro(), rec.RecordID, rec.RecordID, run.ID); err != nil {
		return 0, fmt.Errorf("run %s: finish: %w", run.ID, err)
	}
	return next, nil
}

// queued publishes ev, a run's queued event, and then wakes the queue of
// its step sd, after the transaction that enqueued the step committed: in
// that order, so that the step's running event comes after it.
func (e *Engine) queued(ctx context.Context, ev Event, sd StepDef) {
	e.events.Publish(ev)
	e.wake(ctx, e.insertOpts(sd).Queue)
}

// advanced publishes the events and wakes the next step's queue, after the
// transaction of advance committed (the events first: the next step's
// running event comes after this one's succeeded).
func (e *Engine) advanced(ctx context.Context, run *Run, def *Definition, sd StepDef, next int, active time.Duration, end time.Time) {
	e.events.Publish(Event{RunID: run.ID, Flow: run.Flow, FileName: run.FileName, Step: sd.Name, State: StateSucceeded, Time: end, Active: active})
	if next >= len(def.Steps) {
		e.events.Publish(Event{RunID: run.ID, Flow: run.Flow, FileName: run.FileName, State: StateSucceeded, Time: end})
		return
	}
	e.wake(ctx, e.insertOpts(def.Steps[next]).Queue)
}

// Wait is the output of a step that handed its work to someone else (a
// compute endpoint): the step's job completes, the step stays waiting, and
// Resume finishes it when the work reports back. No worker is held while
// an HPC job queues for hours.
type Wait struct {
	// Ref identifies the outside work (a task ID).
	Ref string `json:"ref"`
}

// wait records a step as waiting and completes its job.
func (e *Engine) wait(ctx context.Context, job *river.Job[stepArgs], run *Run, sd StepDef, w Wait, log *slog.Logger) error {
	out, _ := json.Marshal(w)
	tx, err := e.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("run %s: %w", run.ID, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE step SET state = ?, output = ? WHERE run_id = ? AND idx = ?`, StateWaiting, string(out), run.ID, job.Args.Index); err != nil {
		return fmt.Errorf("run %s: step waiting: %w", run.ID, err)
	}
	if err := e.complete(ctx, tx, job); err != nil {
		return fmt.Errorf("run %s: complete job: %w", run.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("run %s: %w", run.ID, err)
	}
	log.Debug("step waiting", "ref", w.Ref)
	e.events.Publish(Event{RunID: run.ID, Flow: run.Flow, FileName: run.FileName, Step: sd.Name, State: StateWaiting, Time: now()})
	return nil
}

// Resume finishes a waiting step: with its output, enqueueing the next
// step; or with an error, failing the run (the outside work has already
// been retried as its owner saw fit). A step that is not waiting for ref
// is left alone (a duplicate report) and ErrNotFound returned.
func (e *Engine) Resume(ctx context.Context, runID string, index int, ref string, out any, stepErr error) error {
	run, err := e.Run(ctx, runID)
	if err != nil {
		return err
	}
	def, ok := e.flows.Flow(run.Flow)
	if !ok || index < 0 || index >= len(def.Steps) || index >= len(run.Steps) {
		return fmt.Errorf("resume run %s step %d: %w", runID, index, ErrNotFound)
	}
	st := run.Steps[index]
	var w Wait
	json.Unmarshal(st.Output, &w)
	if st.State != StateWaiting || w.Ref != ref {
		return fmt.Errorf("resume run %s step %d (%s, ref %q): %w", runID, index, st.State, w.Ref, ErrNotFound)
	}
	sd := def.Steps[index]
	end := now()
	var active time.Duration
	if st.Started != nil {
		active = end.Sub(*st.Started)
	}
	if stepErr != nil {
		msg := stepErr.Error()
		if !strings.HasPrefix(msg, sd.Name+": ") {
			msg = sd.Name + ": " + msg
		}
		tx, err := e.db.Write.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `UPDATE step SET state = ?, error = ?, active_us = active_us + ?, finished_at = ? WHERE run_id = ? AND idx = ?`,
			StateFailed, msg, active.Microseconds(), end.UnixMicro(), runID, index); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE run SET state = ?, error = ?, updated_at = ?, finished_at = ? WHERE id = ?`, StateFailed, msg, end.UnixMicro(), end.UnixMicro(), runID); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		e.events.Publish(Event{RunID: run.ID, Flow: run.Flow, FileName: run.FileName, Step: sd.Name, State: StateFailed, Error: msg, Time: end, Active: active})
		e.events.Publish(Event{RunID: run.ID, Flow: run.Flow, FileName: run.FileName, State: StateFailed, Error: msg, Time: end})
		return nil
	}
	outJSON, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("resume run %s: %w", runID, err)
	}
	tx, err := e.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	next, err := e.advance(ctx, tx, run, def, index, outJSON, active, end)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	e.advanced(ctx, run, def, sd, next, active, end)
	return nil
}

// call runs a step function, turning a panic into a permanent error.
func (e *Engine) call(ctx context.Context, s *StepRun) (out any, err error) {
	typ, ok := e.types[s.Def.Type]
	if !ok || typ.Func == nil {
		return nil, fmt.Errorf("step type %q: %w: %w", s.Def.Type, ErrNotFound, ErrPermanent)
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %w: panic: %v", s.Def.Name, ErrPermanent, r)
		}
	}()
	return typ.Func(ctx, s)
}

// fail records a failed attempt; the run fails on a permanent error or the
// last attempt, otherwise River retries with backoff.
func (e *Engine) fail(ctx context.Context, job *river.Job[stepArgs], run *Run, sd StepDef, active time.Duration, end time.Time, stepErr error, log *slog.Logger) error {
	if ctx.Err() != nil && !errors.Is(stepErr, ErrPermanent) {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			stepErr = fmt.Errorf("timed out after %s: %w", time.Duration(sd.Timeout), stepErr)
		}
		ctx = context.WithoutCancel(ctx)
	}
	msg := stepErr.Error()
	if !strings.HasPrefix(msg, sd.Name+": ") {
		msg = sd.Name + ": " + msg
	}
	final := errors.Is(stepErr, ErrPermanent) || job.Attempt >= job.MaxAttempts
	state := StateRetrying
	if final {
		state = StateFailed
	}
	tx, err := e.db.Write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("run %s: %w (step error: %w)", run.ID, err, stepErr)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE step SET state = ?, error = ?, active_us = active_us + ?, finished_at = CASE WHEN ? THEN ? ELSE finished_at END WHERE run_id = ? AND idx = ?`,
		state, msg, active.Microseconds(), final, end.UnixMicro(), run.ID, job.Args.Index); err != nil {
		return fmt.Errorf("run %s: record failure: %w (step error: %w)", run.ID, err, stepErr)
	}
	runState := StateRunning
	if final {
		runState = StateFailed
		if _, err := tx.ExecContext(ctx, `UPDATE run SET state = ?, error = ?, updated_at = ?, finished_at = ? WHERE id = ?`, StateFailed, msg, end.UnixMicro(), end.UnixMicro(), run.ID); err != nil {
			return fmt.Errorf("run %s: record failure: %w (step error: %w)", run.ID, err, stepErr)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("run %s: record failure: %w (step error: %w)", run.ID, err, stepErr)
	}
	e.events.Publish(Event{RunID: run.ID, Flow: run.Flow, FileName: run.FileName, Step: sd.Name, State: state, Error: msg, Time: end, Active: active})
	if final {
		log.Warn("run failed", "error", msg)
		e.events.Publish(Event{RunID: run.ID, Flow: run.Flow, FileName: run.FileName, State: runState, Error: msg, Time: end})
		return river.JobCancel(stepErr)
	}
	log.Info("step failed, will retry", "error", msg)
	return stepErr
}

// warnOnly passes on warnings and errors only: River's info lines (its
// producers' periodic job counts, "entering poll only mode" for SQLite,
// which reads like a fault and is how River names its fallback for
// drivers without LISTEN) are its internals, not the operator's business.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h warnOnly) WithAttrs(a []slog.Attr) slog.Handler { return warnOnly{h.Handler.WithAttrs(a)} }
func (h warnOnly) WithGroup(n string) slog.Handler      { return warnOnly{h.Handler.WithGroup(n)} }

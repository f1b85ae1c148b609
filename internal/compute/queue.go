// Package compute hands analyses to compute endpoints: processes on HPC
// login nodes (or any machine) that connect out to the server over HTTPS,
// claim tasks with a lease, fetch the input, run the analysis, send the
// products back and report. A task whose endpoint stops renewing its lease
// goes to the next endpoint that asks; nothing is run twice to completion.
package compute

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors.
var (
	// ErrNotFound means no such task, or not held by this endpoint.
	ErrNotFound = errors.New("task not found")
)

// Task states.
const (
	Pending = "pending"
	Claimed = "claimed"
	Done    = "done"
	Failed  = "failed"
)

// Input is what an endpoint needs to run a task.
type Input struct {
	FileName string          `json:"file_name"`
	SHA256   string          `json:"sha256"`
	Size     int64           `json:"size"`
	Path     string          `json:"path"` // on the server; used directly where the file system is shared
	Options  json.RawMessage `json:"options,omitempty"`
	// Timeout bounds the work on the endpoint, in seconds (0: none): the
	// step's timeout, counted from the claim, so hours in a batch queue
	// do not count but a hung analysis does.
	Timeout float64 `json:"timeout_s,omitempty"`
}

// Task is one unit of work.
type Task struct {
	ID       string    `json:"id"`
	RunID    string    `json:"run_id"`
	Step     int       `json:"step"`
	Kind     string    `json:"kind"`
	Input    Input     `json:"input"`
	State    string    `json:"state"`
	Endpoint string    `json:"endpoint,omitempty"`
	Attempts int       `json:"attempts"`
	Lease    time.Time `json:"lease_until"`
	Error    string    `json:"error,omitempty"`
}

// Queue keeps tasks in the server database.
type Queue struct {
	write, read *sql.DB
	// Lease is how long a claim lasts without a heartbeat (default 60s).
	Lease time.Duration
	// MaxAttempts is how many endpoints may try a task (default 3).
	MaxAttempts int
	// DoneFunc is called once per task when it finishes (result or error).
	DoneFunc func(ctx context.Context, t *Task, result json.RawMessage, err error)
	// Postgres locks the claimed row so servers sharing the database never
	// hand one task to two endpoints.
	Postgres bool

	mu      sync.Mutex
	waiters map[chan struct{}]struct{}
}

// NewQueue returns a queue on a migrated database.
func NewQueue(write, read *sql.DB) *Queue {
	return &Queue{write: write, read: read, Lease: time.Minute, MaxAttempts: 3, waiters: map[chan struct{}]struct{}{}}
}

func newID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

// Submit adds a task and wakes waiting endpoints.
func (q *Queue) Submit(ctx context.Context, runID string, step int, kind string, in Input) (*Task, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("submit task: %w", err)
	}
	t := &Task{ID: newID(), RunID: runID, Step: step, Kind: kind, Input: in, State: Pending}
	now := time.Now().UnixMicro()
	if _, err := q.write.ExecContext(ctx, `INSERT INTO task (id, run_id, step, kind, input, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, runID, step, kind, string(b), Pending, now, now); err != nil {
		return nil, fmt.Errorf("submit task: %w", err)
	}
	q.wake(ctx)
	return t, nil
}

// wake tells waiting claims, here and on other servers sharing the
// PostgreSQL database (see ListenPostgres), that a task is pending; if the
// notification is lost they find it at their next look.
func (q *Queue) wake(ctx context.Context) {
	q.notify()
	if q.Postgres {
		if _, err := q.write.ExecContext(ctx, `SELECT pg_notify('`+taskChannel+`', '')`); err != nil {
			slog.Debug("notify task", "error", err)
		}
	}
}

// Release gives back a task endpoint holds and has not started, at once
// and without counting the attempt (the endpoint's claim went unanswered).
func (q *Queue) Release(ctx context.Context, id, endpoint string) error {
	res, err := q.write.ExecContext(ctx, `UPDATE task SET state = ?, endpoint = '', attempts = attempts - 1, lease_until = 0, updated_at = ?
		WHERE id = ? AND endpoint = ? AND state = ?`, Pending, time.Now().UnixMicro(), id, endpoint, Claimed)
	if err != nil {
		return fmt.Errorf("release task: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("task %s for %s: %w", id, endpoint, ErrNotFound)
	}
	q.wake(ctx)
	return nil
}

// taskChannel is the PostgreSQL notification channel of new tasks.
const taskChannel = "picoflow_task"

// ListenPostgres wakes this server's waiting claims when any server sharing
// the PostgreSQL database submits a task, so an endpoint long-polling one
// replica gets a task another replica created at once. It returns when ctx
// ends, reconnecting after errors.
func (q *Queue) ListenPostgres(ctx context.Context, pool *pgxpool.Pool) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := q.listen(ctx, pool)
		if ctx.Err() != nil {
			return
		}
		slog.Warn("listen for tasks", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (q *Queue) listen(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+taskChannel); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "UNLISTEN "+taskChannel)
	q.notify() // tasks submitted while not listening
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return err
		}
		q.notify()
	}
}

func (q *Queue) notify() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for ch := range q.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Claim gives endpoint the oldest pending task, or one whose lease
// expired (its endpoint is gone), waiting up to wait for one to appear.
// It returns nil when there is none.
func (q *Queue) Claim(ctx context.Context, endpoint string, wait time.Duration) (*Task, error) {
	if err := q.seen(ctx, endpoint); err != nil {
		return nil, err
	}
	ch := make(chan struct{}, 1)
	q.mu.Lock()
	q.waiters[ch] = struct{}{}
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.waiters, ch)
		q.mu.Unlock()
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		t, err := q.claimOnce(ctx, endpoint)
		if err != nil || t != nil {
			return t, err
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-timer.C:
			return nil, nil
		case <-ch:
		case <-time.After(min(q.Lease/2, 5*time.Second)): // leases expire without events
		}
	}
}

func (q *Queue) claimOnce(ctx context.Context, endpoint string) (*Task, error) {
	now := time.Now()
	tx, err := q.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claim task: %w", err)
	}
	defer tx.Rollback()
	var t Task
	var in string
	lock := ""
	if q.Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	err = tx.QueryRowContext(ctx, `SELECT id, run_id, step, kind, input, attempts FROM task
		WHERE state = ? OR (state = ? AND lease_until < ?) ORDER BY created_at LIMIT 1`+lock, Pending, Claimed, now.UnixMicro()).
		Scan(&t.ID, &t.RunID, &t.Step, &t.Kind, &in, &t.Attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claim task: %w", err)
	}
	json.Unmarshal([]byte(in), &t.Input)
	if t.Attempts >= q.MaxAttempts {
		// Every endpoint that took it vanished: give up on it.
		msg := fmt.Sprintf("lost by %d endpoints in a row", t.Attempts)
		if _, err := tx.ExecContext(ctx, `UPDATE task SET state = ?, error = ?, updated_at = ? WHERE id = ?`, Failed, msg, now.UnixMicro(), t.ID); err != nil {
			return nil, fmt.Errorf("claim task: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return nil, err
		}
		if q.DoneFunc != nil {
			q.DoneFunc(ctx, &t, nil, errors.New(msg))
		}
		return q.claimOnce(ctx, endpoint)
	}
	t.State, t.Endpoint, t.Attempts, t.Lease = Claimed, endpoint, t.Attempts+1, now.Add(q.Lease)
	if _, err := tx.ExecContext(ctx, `UPDATE task SET state = ?, endpoint = ?, attempts = ?, lease_until = ?, updated_at = ? WHERE id = ?`,
		Claimed, endpoint, t.Attempts, t.Lease.UnixMicro(), now.UnixMicro(), t.ID); err != nil {
		return nil, fmt.Errorf("claim task: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claim task: %w", err)
	}
	return &t, nil
}

// Heartbeat renews endpoint's lease on a task.
func (q *Queue) Heartbeat(ctx context.Context, id, endpoint string) error {
	res, err := q.write.ExecContext(ctx, `UPDATE task SET lease_until = ?, updated_at = ? WHERE id = ? AND endpoint = ? AND state = ?`,
		time.Now().Add(q.Lease).UnixMicro(), time.Now().UnixMicro(), id, endpoint, Claimed)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("task %s for %s: %w", id, endpoint, ErrNotFound)
	}
	return q.seen(ctx, endpoint)
}

// Get returns a task held by endpoint.
func (q *Queue) Get(ctx context.Context, id, endpoint string) (*Task, error) {
	var t Task
	var in string
	var lease int64
	err := q.read.QueryRowContext(ctx, `SELECT id, run_id, step, kind, input, state, endpoint, attempts, lease_until, error FROM task WHERE id = ?`, id).
		Scan(&t.ID, &t.RunID, &t.Step, &t.Kind, &in, &t.State, &t.Endpoint, &t.Attempts, &lease, &t.Error)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && endpoint != "" && (t.Endpoint != endpoint || t.State != Claimed)) {
		return nil, fmt.Errorf("task %s for %s: %w", id, endpoint, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get task: %w", err)
	}
	json.Unmarshal([]byte(in), &t.Input)
	t.Lease = time.UnixMicro(lease)
	return &t, nil
}

// Complete records endpoint's outcome of a task it holds (errMsg empty for
// success) and calls DoneFunc. A late report from an endpoint that lost
// its lease is refused with ErrNotFound.
func (q *Queue) Complete(ctx context.Context, id, endpoint string, result json.RawMessage, errMsg string) error {
	t, err := q.Get(ctx, id, endpoint)
	if err != nil {
		return err
	}
	state := Done
	if errMsg != "" {
		state = Failed
	}
	res, err := q.write.ExecContext(ctx, `UPDATE task SET state = ?, result = ?, error = ?, updated_at = ? WHERE id = ? AND endpoint = ? AND state = ?`,
		state, string(result), errMsg, time.Now().UnixMicro(), id, endpoint, Claimed)
	if err != nil {
		return fmt.Errorf("complete task: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("task %s for %s: %w", id, endpoint, ErrNotFound)
	}
	count := "done"
	if errMsg != "" {
		count = "failed"
	}
	if _, err := q.write.ExecContext(ctx, `UPDATE endpoint SET `+count+` = `+count+` + 1, last_seen = ? WHERE name = ?`, time.Now().UnixMicro(), endpoint); err != nil {
		return fmt.Errorf("complete task: %w", err)
	}
	if q.DoneFunc != nil {
		var ferr error
		if errMsg != "" {
			ferr = errors.New(errMsg)
		}
		q.DoneFunc(ctx, t, result, ferr)
	}
	return nil
}

// ForStep returns the live (pending or claimed) task of a run's step, or
// nil.
func (q *Queue) ForStep(ctx context.Context, runID, _ string, step int) (*Task, error) {
	var id string
	err := q.read.QueryRowContext(ctx, `SELECT id FROM task WHERE run_id = ? AND step = ? AND state IN (?, ?)`, runID, step, Pending, Claimed).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return q.Get(ctx, id, "")
}

// PendingCount is the number of tasks waiting for an endpoint.
func (q *Queue) PendingCount(ctx context.Context) (int, error) {
	var n int
	err := q.read.QueryRowContext(ctx, `SELECT count(*) FROM task WHERE state = ? OR (state = ? AND lease_until < ?)`,
		Pending, Claimed, time.Now().UnixMicro()).Scan(&n)
	return n, err
}

// FirstClaim is when endpoint first asked for work, through any server
// sharing the database (nil if never). The server names endpoints
// LABEL@SUBJECT (see server.endpointName): a label matches too.
func (q *Queue) FirstClaim(ctx context.Context, endpoint string) (*time.Time, error) {
	var us sql.NullInt64
	err := q.read.QueryRowContext(ctx, `SELECT min(first_seen) FROM endpoint WHERE name = ? OR substr(name, 1, ?) = ?`,
		endpoint, len(endpoint)+1, endpoint+"@").Scan(&us)
	if err != nil {
		return nil, fmt.Errorf("first claim: %w", err)
	}
	if !us.Valid {
		return nil, nil
	}
	t := time.UnixMicro(us.Int64)
	return &t, nil
}

// seen records that endpoint asked for work or reported on a task now.
func (q *Queue) seen(ctx context.Context, endpoint string) error {
	now := time.Now().UnixMicro()
	if _, err := q.write.ExecContext(ctx, `INSERT INTO endpoint (name, first_seen, last_seen) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen`, endpoint, now, now); err != nil {
		return fmt.Errorf("endpoint %s: %w", endpoint, err)
	}
	return nil
}

// EndpointInfo is what the server knows of one compute endpoint.
type EndpointInfo struct {
	Name      string    `json:"name"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Alive: heard from within two leases (claims long-poll for at most
	// two minutes, heartbeats come every third of a lease).
	Alive bool `json:"alive"`
	// Running is how many tasks it holds now.
	Running int `json:"running"`
	Done    int `json:"done"`
	Failed  int `json:"failed"`
}

// Endpoints lists the endpoints heard from since since, newest first.
func (q *Queue) Endpoints(ctx context.Context, since time.Time) ([]EndpointInfo, error) {
	now := time.Now()
	rows, err := q.read.QueryContext(ctx, `SELECT e.name, e.first_seen, e.last_seen, e.done, e.failed,
		(SELECT count(*) FROM task t WHERE t.endpoint = e.name AND t.state = ? AND t.lease_until >= ?)
		FROM endpoint e WHERE e.last_seen >= ? ORDER BY e.last_seen DESC, e.name LIMIT 1000`, Claimed, now.UnixMicro(), since.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	defer rows.Close()
	var out []EndpointInfo
	for rows.Next() {
		var e EndpointInfo
		var first, last int64
		if err := rows.Scan(&e.Name, &first, &last, &e.Done, &e.Failed, &e.Running); err != nil {
			return nil, fmt.Errorf("list endpoints: %w", err)
		}
		e.FirstSeen, e.LastSeen = time.UnixMicro(first), time.UnixMicro(last)
		e.Alive = now.Sub(e.LastSeen) < max(2*q.Lease, 2*time.Minute+5*time.Second)
		out = append(out, e)
	}
	return out, rows.Err()
}

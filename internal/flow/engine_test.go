package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/store"
)

const testFlows = `
flows:
  - name: demo
    steps:
      - {name: transfer, type: upload}
      - {name: analyze, type: work, timeout: 2s}
      - {name: publish, type: publish}
  - name: flaky
    steps:
      - {name: first, type: flaky, attempts: 3}
      - {name: second, type: publish}
  - name: bad
    steps:
      - {name: only, type: bad}
  - name: broken
    steps:
      - {name: only, type: alwaysfails, attempts: 2}
  - name: slow
    steps:
      - {name: only, type: sleep, timeout: 200ms, attempts: 1}
  - name: remote
    steps:
      - {name: compute, type: remote}
      - {name: publish, type: publish}
`

type bundle struct {
	db      *store.DB
	eng     *Engine
	flaky   atomic.Int32
	mu      sync.Mutex
	seen    map[string]json.RawMessage // outputs seen by publish
	release chan struct{}
}

func sha(i int) string { return fmt.Sprintf("%064x", i) }

func setup(t *testing.T, path string) *bundle {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "p.db")
	}
	db, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return setupDB(t, db)
}

func setupDB(t *testing.T, db *store.DB) *bundle {
	t.Helper()
	return setupEngine(t, db, true, nil)
}

// setupEngine builds an engine on db with the test flows; start runs its
// workers; adjust changes its configuration.
func setupEngine(t *testing.T, db *store.DB, start bool, adjust func(*EngineConfig)) *bundle {
	t.Helper()
	b := &bundle{db: db, seen: map[string]json.RawMessage{}, release: make(chan struct{})}
	cfg, err := ParseConfig([]byte(testFlows))
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]StepType{
		"upload": {Func: func(ctx context.Context, s *StepRun) (any, error) {
			return map[string]any{"stored": "/data/" + s.Run.FileName}, nil
		}},
		"work": {Queue: QueueAnalyze, Func: func(ctx context.Context, s *StepRun) (any, error) {
			var prev struct{ Stored string }
			json.Unmarshal(s.Outputs["transfer"], &prev)
			return map[string]any{"analysed": prev.Stored}, nil
		}},
		"publish": {Func: func(ctx context.Context, s *StepRun) (any, error) {
			b.mu.Lock()
			for k, v := range s.Outputs {
				b.seen[s.Run.ID+"/"+k] = v
			}
			b.mu.Unlock()
			return map[string]any{"record_id": "rec-" + s.Run.SHA256[:8]}, nil
		}},
		"flaky": {Func: func(ctx context.Context, s *StepRun) (any, error) {
			if b.flaky.Add(1) == 1 {
				return nil, errors.New("storage not mounted yet")
			}
			return "ok", nil
		}},
		"bad": {Func: func(ctx context.Context, s *StepRun) (any, error) {
			return nil, fmt.Errorf("open %s: truncated file: %w", s.Run.FileName, ErrPermanent)
		}},
		"alwaysfails": {Func: func(ctx context.Context, s *StepRun) (any, error) {
			return nil, errors.New("endpoint unreachable")
		}},
		"remote": {Func: func(ctx context.Context, s *StepRun) (any, error) {
			return Wait{Ref: "task-" + s.Run.ID}, nil
		}},
		"sleep": {Func: func(ctx context.Context, s *StepRun) (any, error) {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-b.release:
				return "released", nil
			}
		}},
	}
	ec := EngineConfig{DB: db, Flows: cfg, Types: types, RetryBase: 10 * time.Millisecond}
	if adjust != nil {
		adjust(&ec)
	}
	eng, err := New(ec)
	if err != nil {
		t.Fatal(err)
	}
	b.eng = eng
	if !start {
		return b
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		eng.Stop(ctx)
	})
	return b
}

func (b *bundle) wait(t *testing.T, id string) *Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := b.eng.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Terminal() {
		t.Fatalf("run %s still %s after 20 s", id, r.State)
	}
	return r
}

func TestRunSucceedsWithTimingsAndOutputs(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	events, cancel := b.eng.Events().Subscribe(100)
	defer cancel()
	recv := time.Now().Add(-50 * time.Millisecond)
	r, created, err := b.eng.StartRun(context.Background(), RunSpec{Flow: "demo", SHA256: sha(1), FileName: "si.emd", Size: 10, Received: recv})
	if err != nil || !created {
		t.Fatal(created, err)
	}
	r = b.wait(t, r.ID)
	if r.State != StateSucceeded || r.RecordID != "rec-00000000" || r.Finished == nil {
		t.Fatalf("run %+v", r)
	}
	if len(r.Steps) != 3 {
		t.Fatalf("%d steps", len(r.Steps))
	}
	for _, s := range r.Steps {
		if s.State != StateSucceeded || s.Attempts != 1 || s.Started == nil || s.Finished == nil || s.Finished.Before(*s.Started) {
			t.Errorf("step %+v", s)
		}
	}
	// The transfer step started when the file began to arrive.
	if d := r.Steps[0].Active; d < 50*time.Millisecond {
		t.Errorf("transfer active %v, want >= 50ms (from the upload's start)", d)
	}
	if !r.Created.Equal(recv.UTC().Truncate(time.Microsecond)) {
		t.Errorf("created %v, want %v", r.Created, recv)
	}
	b.mu.Lock()
	got := string(b.seen[r.ID+"/analyze"])
	b.mu.Unlock()
	if got != `{"analysed":"/data/si.emd"}` {
		t.Errorf("publish saw analyze output %s", got)
	}
	var states []string
	for len(events) > 0 {
		ev := <-events
		states = append(states, ev.Step+":"+ev.State)
	}
	want := ":queued transfer:running transfer:succeeded analyze:running analyze:succeeded publish:running publish:succeeded :succeeded"
	if strings.Join(states, " ") != want {
		t.Errorf("events\n%s\nwant\n%s", strings.Join(states, " "), want)
	}
	stats, err := b.eng.Stats(context.Background(), time.Time{}, ListQuery{All: true})
	if err != nil || len(stats) != 1 || stats[0].Runs != 1 || len(stats[0].Steps) != 3 {
		t.Fatalf("stats %+v %v", stats, err)
	}
	s := stats[0]
	if s.MeanRuntime < s.MeanActive || s.MeanOverhead != s.MeanRuntime-s.MeanActive {
		t.Errorf("stats inconsistent: %+v", s)
	}
	t.Logf("runtime %v, active %v, overhead %v (%.1f%%)", s.MeanRuntime, s.MeanActive, s.MeanOverhead, 100*s.OverheadShare)
}

func TestSameContentRunsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	ctx := context.Background()
	r1, c1, err := b.eng.StartRun(ctx, RunSpec{Flow: "demo", SHA256: sha(2), FileName: "a.emd"})
	if err != nil {
		t.Fatal(err)
	}
	r2, c2, err := b.eng.StartRun(ctx, RunSpec{Flow: "demo", SHA256: sha(2), FileName: "copy-of-a.emd"})
	if err != nil {
		t.Fatal(err)
	}
	if !c1 || c2 || r1.ID != r2.ID {
		t.Fatalf("second start: created %v, ids %s %s", c2, r1.ID, r2.ID)
	}
	b.wait(t, r1.ID)
	var jobs int
	if err := b.db.Read.QueryRow(`SELECT count(*) FROM river_job WHERE kind = 'picoflow_step'`).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if jobs != 3 {
		t.Errorf("%d jobs for one 3-step run", jobs)
	}
	// Another flow may process the same content.
	if _, c3, err := b.eng.StartRun(ctx, RunSpec{Flow: "flaky", SHA256: sha(2), FileName: "a.emd"}); err != nil || !c3 {
		t.Fatalf("other flow: %v %v", c3, err)
	}
}

func TestRetryThenSucceed(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	r, _, err := b.eng.StartRun(context.Background(), RunSpec{Flow: "flaky", SHA256: sha(3), FileName: "f.emd"})
	if err != nil {
		t.Fatal(err)
	}
	r = b.wait(t, r.ID)
	if r.State != StateSucceeded || r.Steps[0].Attempts != 2 || r.Steps[0].Error != "" {
		t.Fatalf("run %s, first step %+v", r.State, r.Steps[0])
	}
}

func TestPermanentErrorFailsAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	r, _, err := b.eng.StartRun(context.Background(), RunSpec{Flow: "bad", SHA256: sha(4), FileName: "cut.emd"})
	if err != nil {
		t.Fatal(err)
	}
	r = b.wait(t, r.ID)
	if r.State != StateFailed || r.Steps[0].Attempts != 1 || !strings.Contains(r.Error, "open cut.emd: truncated file") {
		t.Fatalf("run %s error %q attempts %d", r.State, r.Error, r.Steps[0].Attempts)
	}
}

func TestAttemptsExhaustedThenManualRetry(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	r, _, err := b.eng.StartRun(context.Background(), RunSpec{Flow: "broken", SHA256: sha(5), FileName: "x.emd"})
	if err != nil {
		t.Fatal(err)
	}
	r = b.wait(t, r.ID)
	if r.State != StateFailed || r.Steps[0].Attempts != 2 || !strings.Contains(r.Error, "endpoint unreachable") {
		t.Fatalf("run %s error %q attempts %d", r.State, r.Error, r.Steps[0].Attempts)
	}
	r, err = b.eng.Retry(context.Background(), r.ID)
	if err != nil || (r.State != StateQueued && r.State != StateRunning) {
		t.Fatalf("retry: %v %v", r.State, err)
	}
	r = b.wait(t, r.ID)
	if r.State != StateFailed || r.Steps[0].Attempts != 2 {
		t.Fatalf("after manual retry: %s, %d attempts", r.State, r.Steps[0].Attempts)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	r, _, err := b.eng.StartRun(context.Background(), RunSpec{Flow: "slow", SHA256: sha(6), FileName: "s.emd"})
	if err != nil {
		t.Fatal(err)
	}
	r = b.wait(t, r.ID)
	if r.State != StateFailed || !strings.Contains(r.Error, "timed out after 200ms") {
		t.Fatalf("run %s error %q", r.State, r.Error)
	}
}

func TestUnknownFlowAndBadConfig(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	if _, _, err := b.eng.StartRun(context.Background(), RunSpec{Flow: "nope", SHA256: sha(7)}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown flow: %v", err)
	}
	for _, y := range []string{
		"flows: [{name: a, steps: [{name: x}]}]\nextra: 1",
		"flows: [{name: A, steps: [{name: x}]}]",
		"flows: [{name: a, steps: []}]",
		"flows: [{name: a, steps: [{name: x}, {name: x}]}]",
		"flows: [{name: a, steps: [{name: x, timeout: soon}]}]",
	} {
		if _, err := ParseConfig([]byte(y)); !errors.Is(err, ErrConfig) {
			t.Errorf("%q: %v, want ErrConfig", y, err)
		}
	}
	if _, err := New(EngineConfig{DB: b.db, Flows: DefaultConfig(), Types: map[string]StepType{"transfer": {}}}); !errors.Is(err, ErrConfig) {
		t.Errorf("default flows with missing step types: %v", err)
	}
}

// TestWaitingStepResumes: a step hands its work out and completes its job;
// the run stays running without holding a worker until Resume.
func TestWaitingStepResumes(t *testing.T) {
	t.Parallel()
	b := setup(t, "")
	ctx := context.Background()
	for _, fail := range []bool{false, true} {
		r, _, err := b.eng.StartRun(ctx, RunSpec{Flow: "remote", SHA256: sha(100 + len(fmt.Sprint(fail))), FileName: "hpc.emd"})
		if err != nil {
			t.Fatal(err)
		}
		// Wait for the step to be waiting.
		deadline := time.Now().Add(10 * time.Second)
		for {
			r, err = b.eng.Run(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if r.Steps[0].State == StateWaiting {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("step %s, never waiting", r.Steps[0].State)
			}
			time.Sleep(5 * time.Millisecond)
		}
		var running int
		b.db.Read.QueryRow(`SELECT count(*) FROM river_job WHERE state = 'running' AND kind = 'picoflow_step'`).Scan(&running)
		if running != 0 || r.State == StateSucceeded {
			t.Fatalf("waiting step holds %d jobs; run %s", running, r.State)
		}
		if err := b.eng.Resume(ctx, r.ID, 0, "wrong-ref", nil, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("resume with a wrong ref: %v", err)
		}
		var stepErr error
		if fail {
			stepErr = errors.New("node failure on the cluster")
		}
		if err := b.eng.Resume(ctx, r.ID, 0, "task-"+r.ID, map[string]string{"result": "ok"}, stepErr); err != nil {
			t.Fatal(err)
		}
		r = b.wait(t, r.ID)
		switch {
		case fail && (r.State != StateFailed || !strings.Contains(r.Error, "node failure")):
			t.Fatalf("failed remote step: %s %q", r.State, r.Error)
		case !fail && (r.State != StateSucceeded || r.Steps[0].State != StateSucceeded):
			t.Fatalf("resumed run: %s", r.State)
		}
		// A second report changes nothing.
		if err := b.eng.Resume(ctx, r.ID, 0, "task-"+r.ID, nil, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("duplicate resume: %v", err)
		}
	}
}

// TestMergeFlows: a flows file adds to the built-in flows and replaces
// those it names.
func TestMergeFlows(t *testing.T) {
	over, err := ParseConfig([]byte("flows:\n  - name: hyperspectral\n    steps:\n      - {name: transfer}\n  - name: extra\n    steps:\n      - {name: transfer}\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := Merge(DefaultConfig(), over)
	hs, _ := m.Flow("hyperspectral")
	if _, ok := m.Flow("extra"); !ok || len(hs.Steps) != 1 {
		t.Fatalf("merged: %+v", m.Flows)
	}
	for _, name := range []string{"spatiotemporal", "emd", "hpc"} {
		if _, ok := m.Flow(name); !ok {
			t.Errorf("built-in flow %s lost", name)
		}
	}
	if len(m.Flows) != len(DefaultConfig().Flows)+1 {
		t.Errorf("%d flows", len(m.Flows))
	}
}

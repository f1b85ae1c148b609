package compute

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Block is one provider job running an endpoint.
type Block struct {
	ID, Name  string
	State     string
	Submitted time.Time
	// FirstClaim is when its endpoint first asked for work; the node
	// start-up time is FirstClaim - Submitted.
	FirstClaim *time.Time
}

// Startup is the node start-up time, known once the endpoint asked for
// work.
func (b Block) Startup() (time.Duration, bool) {
	if b.FirstClaim == nil {
		return 0, false
	}
	return b.FirstClaim.Sub(b.Submitted), true
}

// Scaler keeps blocks of endpoints on a Provider: at least Min, and one
// more while tasks wait and fewer than Max run, up to Max. Blocks end by
// themselves when idle (their endpoints run with --exit-when-idle).
type Scaler struct {
	Queue    *Queue
	Provider Provider
	Min, Max int
	// SpecFunc describes the block that runs an endpoint named name.
	SpecFunc func(name string) BlockSpec
	// Interval between checks (default 5s).
	Interval time.Duration
	Logger   *slog.Logger
	// Started, if set, hears of each block whose endpoint asked for work
	// (FirstClaim - Submitted is the node start-up time).
	Started func(Block)

	mu     sync.Mutex
	blocks map[string]*Block
	n      int
	// Blocks that ended without ever asking for work (a broken command,
	// a bad partition) back off the next submission exponentially.
	failed    int
	notBefore time.Time
	runMu     sync.Mutex // guards cancel
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// Start runs the scaling loop.
func (s *Scaler) Start(ctx context.Context) error {
	if s.Provider == nil || s.SpecFunc == nil || s.Queue == nil {
		return fmt.Errorf("scaler: provider, spec and queue are required")
	}
	ctx, cancel := context.WithCancel(ctx)
	s.runMu.Lock()
	s.cancel = cancel
	s.runMu.Unlock()
	s.wg.Go(func() {
		t := time.NewTicker(cmp.Or(s.Interval, 5*time.Second))
		defer t.Stop()
		for {
			if err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
				s.log().Warn("scale blocks", "error", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return nil
}

// Stop stops scaling (running blocks finish on their own). The scaler may
// be started again.
func (s *Scaler) Stop() {
	s.runMu.Lock()
	if s.cancel != nil {
		s.cancel()
	}
	s.runMu.Unlock()
	s.wg.Wait()
}

func (s *Scaler) log() *slog.Logger { return cmp.Or(s.Logger, slog.Default()) }

// Blocks returns the live blocks.
func (s *Scaler) Blocks() []Block {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Block
	for _, b := range s.blocks {
		out = append(out, *b)
	}
	return out
}

// Refresh asks the provider for the blocks' states now and returns them.
func (s *Scaler) Refresh(ctx context.Context) ([]Block, error) {
	s.mu.Lock()
	_, err := s.refresh(ctx)
	s.mu.Unlock()
	return s.Blocks(), err
}

// refresh updates the blocks' states and start-up times, forgets finished
// blocks, and returns how many wait in the scheduler. s.mu is held.
func (s *Scaler) refresh(ctx context.Context) (queued int, err error) {
	for id, b := range s.blocks {
		st, err := s.Provider.Status(ctx, id)
		if err != nil {
			return 0, err
		}
		b.State = st
		if b.FirstClaim == nil {
			if t, err := s.Queue.FirstClaim(ctx, b.Name); err == nil && t != nil {
				b.FirstClaim = t
				s.log().Info("block started", "block", b.Name, "job", id, "startup_s", t.Sub(b.Submitted).Seconds())
				if s.Started != nil {
					s.Started(*b)
				}
			}
		}
		switch st {
		case BlockFinished:
			delete(s.blocks, id)
			if b.FirstClaim == nil {
				s.failed++
				wait := min(cmp.Or(s.Interval, 5*time.Second)*time.Duration(1<<min(s.failed, 7)), 10*time.Minute)
				s.notBefore = time.Now().Add(wait)
				s.log().Warn("block ended without starting an endpoint; see its log", "block", b.Name, "job", id, "retry_in", wait)
			} else {
				s.failed = 0
			}
		case BlockQueued:
			queued++
		}
	}
	return queued, nil
}

// RunOnce refreshes the blocks' states and submits what is missing.
func (s *Scaler) RunOnce(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocks == nil {
		s.blocks = map[string]*Block{}
	}
	queued, err := s.refresh(ctx)
	if err != nil {
		return err
	}
	pending, err := s.Queue.PendingCount(ctx)
	if err != nil {
		return err
	}
	want := len(s.blocks)
	if want < s.Min {
		want = s.Min
	}
	if pending > 0 && queued == 0 && want < s.Max {
		want++ // one more at a time, while none is waiting in the scheduler
	}
	if time.Now().Before(s.notBefore) {
		return nil
	}
	for len(s.blocks) < min(want, max(s.Max, s.Min)) {
		s.n++
		name := fmt.Sprintf("block-%d-%d", time.Now().Unix(), s.n)
		id, err := s.Provider.Submit(ctx, s.SpecFunc(name))
		if err != nil {
			return fmt.Errorf("submit block: %w", err)
		}
		s.blocks[id] = &Block{ID: id, Name: name, State: BlockQueued, Submitted: time.Now()}
		s.log().Info("block submitted", "block", name, "job", id, "pending_tasks", pending)
	}
	return nil
}

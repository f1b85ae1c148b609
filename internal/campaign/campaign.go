// Package campaign re-analyses past data: a campaign selects records with a
// search (the portal's query language, run with its creator's principals)
// and starts one flow run per record on the stored raw file, with chosen
// analysis parameters, at most MaxInFlight at a time. Each run publishes a
// new version of its record. Campaigns are kept in the database item by
// item, so a restarted server resumes them; they are idempotent (a run is
// keyed by content, flow, analysis version and parameters, so a second
// identical campaign starts nothing), cancellable, and their failed items
// can be retried.
package campaign

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/buildinfo"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/store"
)

// Campaign states.
const (
	StateRunning   = "running"
	StateDone      = "done"
	StateCancelled = "cancelled"
)

// Item states.
const (
	ItemPending   = "pending"
	ItemStarted   = "started"
	ItemDone      = "done"
	ItemFailed    = "failed"
	ItemSkipped   = "skipped" // up to date, or done by an earlier identical run
	ItemCancelled = "cancelled"
)

// Errors.
var (
	ErrNotFound = errors.New("campaign not found")
	ErrInvalid  = errors.New("invalid campaign")
)

// Spec is what a campaign does.
type Spec struct {
	// Query selects the records (catalog.ParseQuery).
	Query string `json:"query"`
	// Flow runs on each record's raw file (default: the flow that made it).
	Flow string `json:"flow,omitempty"`
	// Params are analysis parameters by name (analysis.ParamNames).
	Params map[string]string `json:"params,omitempty"`
	// Where runs the analysis: "" (as the flow says), server or endpoint.
	Where string `json:"where,omitempty"`
	// MaxInFlight bounds the runs under way at once (default 4).
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// Records name the records instead of a query (the record page's
	// re-run button).
	Records []string `json:"records,omitempty"`
	// Force runs records again even when they are up to date (a repair
	// after an outside program was installed).
	Force bool `json:"force,omitempty"`
}

// Campaign is a campaign and its progress.
type Campaign struct {
	ID        string     `json:"id"`
	Spec      Spec       `json:"spec"`
	State     string     `json:"state"`
	CreatedBy string     `json:"created_by"`
	Created   time.Time  `json:"created"`
	Updated   time.Time  `json:"updated"`
	Finished  *time.Time `json:"finished,omitempty"`
	// Version is the analysis version its runs use.
	Version string         `json:"analysis_version"`
	Total   int            `json:"total"`
	Counts  map[string]int `json:"counts"`
	// RatePerSec is records finished (done, failed, skipped) per second
	// since the campaign started; ETA the time left at that rate.
	RatePerSec float64       `json:"rate_per_s"`
	ETA        time.Duration `json:"eta_ns,omitempty"`
	// Failures are the failed items, with reasons (at most 100).
	Failures []Item `json:"failures,omitempty"`
}

// Item is one record of a campaign.
type Item struct {
	Seq      int       `json:"seq"`
	RecordID string    `json:"record_id"`
	State    string    `json:"state"`
	RunID    string    `json:"run_id,omitempty"`
	Error    string    `json:"error,omitempty"`
	Updated  time.Time `json:"updated"`
}

// Settled counts the items that need nothing more (done, failed, skipped, cancelled).
func (c *Campaign) Settled() int {
	return c.Counts[ItemDone] + c.Counts[ItemFailed] + c.Counts[ItemSkipped] + c.Counts[ItemCancelled]
}

// Engine is what a campaign needs of the flow engine.
type Engine interface {
	StartRun(ctx context.Context, spec flow.RunSpec) (*flow.Run, bool, error)
	Run(ctx context.Context, id string) (*flow.Run, error)
	Readers(ctx context.Context, id string) ([]string, error)
	Retry(ctx context.Context, id string) (*flow.Run, error)
	Flows() flow.Config
	Events() *flow.Broker
}

// Config configures a Service.
type Config struct {
	DB      *store.DB
	Engine  Engine
	Catalog catalog.Index
	Logger  *slog.Logger
	// Version is the analysis version runs are keyed by (default: this
	// build's).
	Version string
	// RunMeta are the run metadata keys of a re-analysis: the record it
	// versions and its analysis parameters (the server's step names them).
	RecordKey, ParamsKey string
}

// Service runs campaigns. Start resumes those a stopped server left.
type Service struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}
	stop context.CancelFunc
	wg   sync.WaitGroup
	// work serialises the scheduler's passes.
	work sync.Mutex
}

// New returns a service; Start runs it.
func New(cfg Config) *Service {
	cfg.Version = cmp.Or(cfg.Version, buildinfo.Current().Version)
	cfg.RecordKey = cmp.Or(cfg.RecordKey, "record_id")
	cfg.ParamsKey = cmp.Or(cfg.ParamsKey, "params")
	return &Service{cfg: cfg, log: cmp.Or(cfg.Logger, slog.Default()), wake: make(chan struct{}, 1)}
}

// Start runs the scheduler until Stop.
func (s *Service) Start(ctx context.Context) error {
	ctx, s.stop = context.WithCancel(context.WithoutCancel(ctx))
	events, cancel := s.cfg.Engine.Events().Subscribe(256)
	s.wg.Go(func() {
		defer cancel()
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			if err := s.pass(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("campaigns", "error", err)
			}
		wait:
			for {
				select {
				case <-ctx.Done():
					return
				case <-s.wake:
					break wait
				case ev := <-events:
					// A run finished: its campaign may start the next.
					if ev.Step == "" && (ev.State == flow.StateSucceeded || ev.State == flow.StateFailed) {
						break wait
					}
				case <-tick.C:
					break wait
				}
			}
		}
	})
	return nil
}

// Stop ends the scheduler; campaigns resume at the next Start.
func (s *Service) Stop(context.Context) error {
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
	return nil
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func newID(t time.Time) string {
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("c%011x%s", t.UnixMilli(), hex.EncodeToString(b))
}

// Create selects the records the query finds for principals and starts a
// campaign over them.
func (s *Service) Create(ctx context.Context, spec Spec, createdBy string, principals []string) (*Campaign, error) {
	if spec.Flow != "" {
		flows := s.cfg.Engine.Flows()
		if _, ok := flows.Flow(spec.Flow); !ok {
			return nil, fmt.Errorf("%w: flow %q is not configured on this server", ErrInvalid, spec.Flow)
		}
	}
	switch spec.Where {
	case "", "server", "endpoint":
	default:
		return nil, fmt.Errorf("%w: where must be server or endpoint, not %q", ErrInvalid, spec.Where)
	}
	if err := analysis.CheckParams(spec.Params); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if spec.MaxInFlight <= 0 {
		spec.MaxInFlight = 4
	}
	spec.MaxInFlight = min(spec.MaxInFlight, 256)
	var ids []string
	if len(spec.Records) > 0 {
		for _, id := range spec.Records {
			if _, err := s.cfg.Catalog.Get(ctx, id, principals); err != nil {
				return nil, fmt.Errorf("%w: record %s: %w", ErrInvalid, id, err)
			}
			ids = append(ids, id)
		}
	} else {
		q, err := catalog.ParseQuery(spec.Query)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if strings.TrimSpace(spec.Query) == "" {
			return nil, fmt.Errorf("%w: an empty query would select every record; say which (kind:hyperspectral selects all spectrum images)", ErrInvalid)
		}
		q.Principals, q.Sort, q.Limit = principals, catalog.SortOldest, 200
		for {
			res, err := s.cfg.Catalog.Search(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("campaign: select records: %w", err)
			}
			for _, h := range res.Hits {
				ids = append(ids, h.ID)
			}
			if len(res.Hits) < q.Limit {
				break
			}
			q.Offset += len(res.Hits)
		}
	}
	t := time.Now().UTC()
	c := &Campaign{ID: newID(t), Spec: spec, State: StateRunning, CreatedBy: createdBy, Created: t, Updated: t, Version: s.cfg.Version, Total: len(ids)}
	specJSON, _ := json.Marshal(struct {
		Spec
		Version string `json:"analysis_version"`
	}{spec, s.cfg.Version})
	princJSON, _ := json.Marshal(principals)
	tx, err := s.cfg.DB.Write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("campaign: %w", err)
	}
	defer tx.Rollback()
	state := StateRunning
	var finished any
	if len(ids) == 0 {
		state, finished = StateDone, t.UnixMicro()
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO campaign (id, spec, state, created_by, principals, created_at, updated_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, string(specJSON), state, createdBy, string(princJSON), t.UnixMicro(), t.UnixMicro(), finished); err != nil {
		return nil, fmt.Errorf("campaign: %w", err)
	}
	for i, id := range ids {
		if _, err := tx.ExecContext(ctx, `INSERT INTO campaign_item (campaign_id, seq, record_id, state, updated_at) VALUES (?, ?, ?, ?, ?)`,
			c.ID, i, id, ItemPending, t.UnixMicro()); err != nil {
			return nil, fmt.Errorf("campaign: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("campaign: %w", err)
	}
	s.log.Info("campaign created", "campaign", c.ID, "records", len(ids), "query", spec.Query, "by", createdBy)
	s.poke()
	return s.Get(ctx, c.ID)
}

// Rerun runs one record again, whatever ran before (the repair of a record
// made while an outside program was missing): a campaign of that record.
func (s *Service) Rerun(ctx context.Context, recordID, createdBy string, principals []string) (*Campaign, error) {
	return s.Create(ctx, Spec{Records: []string{recordID}, Force: true, MaxInFlight: 1}, createdBy, principals)
}

// RerunKey keys the run of one record's content: the same content, flow,
// analysis version, parameters and place make the same key, so a second
// identical campaign finds the first one's runs instead of starting new
// ones.
func RerunKey(version, flowName string, params map[string]string, where string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", version, flowName, where)
	for _, k := range slices.Sorted(maps.Keys(params)) {
		fmt.Fprintf(h, "%s=%s\x00", k, params[k])
	}
	return "re-" + hex.EncodeToString(h.Sum(nil))[:32]
}

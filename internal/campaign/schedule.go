package campaign

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/flow"
)

// pass moves every campaign on: items whose runs ended are marked, new runs
// start up to each campaign's limit, finished campaigns are closed.
func (s *Service) pass(ctx context.Context) error {
	s.work.Lock()
	defer s.work.Unlock()
	rows, err := s.cfg.DB.Read.QueryContext(ctx, `SELECT id, spec, state, principals FROM campaign WHERE state = ? OR (state = ? AND EXISTS
		(SELECT 1 FROM campaign_item i WHERE i.campaign_id = campaign.id AND i.state = ?))`, StateRunning, StateCancelled, ItemStarted)
	if err != nil {
		return err
	}
	type open struct {
		id, state  string
		spec       stored
		principals []string
	}
	var cs []open
	for rows.Next() {
		var o open
		var spec, princ string
		if err := rows.Scan(&o.id, &spec, &o.state, &princ); err != nil {
			rows.Close()
			return err
		}
		json.Unmarshal([]byte(spec), &o.spec)
		json.Unmarshal([]byte(princ), &o.principals)
		cs = append(cs, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, c := range cs {
		if err := s.advance(ctx, c.id, c.state, c.spec, c.principals); err != nil {
			s.log.Warn("campaign", "campaign", c.id, "error", err)
		}
	}
	return nil
}

// stored is a campaign's spec as kept, with the analysis version its runs
// are keyed by.
type stored struct {
	Spec
	Version string `json:"analysis_version"`
}

func (s *Service) items(ctx context.Context, id, state string, limit int) ([]Item, error) {
	rows, err := s.cfg.DB.Read.QueryContext(ctx, `SELECT seq, record_id, state, run_id, error, updated_at FROM campaign_item
		WHERE campaign_id = ? AND state = ? ORDER BY seq LIMIT ?`, id, state, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Item
	for rows.Next() {
		var it Item
		var upd int64
		if err := rows.Scan(&it.Seq, &it.RecordID, &it.State, &it.RunID, &it.Error, &upd); err != nil {
			return nil, err
		}
		it.Updated = time.UnixMicro(upd).UTC()
		out = append(out, it)
	}
	return out, rows.Err()
}

func (s *Service) setItem(ctx context.Context, id string, seq int, state, runID, msg string) error {
	_, err := s.cfg.DB.Write.ExecContext(ctx, `UPDATE campaign_item SET state = ?, run_id = ?, error = ?, updated_at = ? WHERE campaign_id = ? AND seq = ?`,
		state, runID, msg, time.Now().UnixMicro(), id, seq)
	return err
}

// advance moves one campaign on.
func (s *Service) advance(ctx context.Context, id, state string, spec stored, principals []string) error {
	started, err := s.items(ctx, id, ItemStarted, 1<<20)
	if err != nil {
		return err
	}
	inFlight := 0
	for _, it := range started {
		run, err := s.cfg.Engine.Run(ctx, it.RunID)
		if errors.Is(err, flow.ErrNotFound) {
			// Never committed (a crash between the two writes): start it
			// again; the rerun key keeps it single.
			if err := s.setItem(ctx, id, it.Seq, ItemPending, "", ""); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if done, st, msg := outcome(run); done {
			if err := s.setItem(ctx, id, it.Seq, st, run.ID, msg); err != nil {
				return err
			}
			continue
		}
		inFlight++
	}
	if state == StateRunning {
		for inFlight < spec.MaxInFlight {
			next, err := s.items(ctx, id, ItemPending, spec.MaxInFlight-inFlight)
			if err != nil {
				return err
			}
			if len(next) == 0 {
				break
			}
			for _, it := range next {
				st, runID, msg := s.start(ctx, id, spec, principals, it.RecordID)
				if err := s.setItem(ctx, id, it.Seq, st, runID, msg); err != nil {
					return err
				}
				if st == ItemStarted {
					inFlight++
				}
			}
		}
	}
	if inFlight > 0 || state != StateRunning {
		return nil
	}
	var pending int
	if err := s.cfg.DB.Write.QueryRowContext(ctx, `SELECT count(*) FROM campaign_item WHERE campaign_id = ? AND state IN (?, ?)`,
		id, ItemPending, ItemStarted).Scan(&pending); err != nil {
		return err
	}
	if pending == 0 {
		t := time.Now().UnixMicro()
		if _, err := s.cfg.DB.Write.ExecContext(ctx, `UPDATE campaign SET state = ?, updated_at = ?, finished_at = ? WHERE id = ? AND state = ?`,
			StateDone, t, t, id, StateRunning); err != nil {
			return err
		}
		s.log.Info("campaign done", "campaign", id)
	}
	return nil
}

// outcome says whether a run has ended and how its item ends.
func outcome(run *flow.Run) (done bool, state, msg string) {
	switch run.State {
	case flow.StateSucceeded:
		return true, ItemDone, ""
	case flow.StateFailed:
		return true, ItemFailed, run.Error
	}
	return false, "", ""
}

// start starts the run of one record and says how its item stands.
func (s *Service) start(ctx context.Context, campaignID string, spec stored, principals []string, recordID string) (state, runID, msg string) {
	e, err := s.cfg.Catalog.Get(ctx, recordID, principals)
	if errors.Is(err, catalog.ErrNotFound) {
		return ItemFailed, "", "the record is gone or no longer visible to the campaign's creator"
	}
	if err != nil {
		return ItemPending, "", "" // the database is busy: next pass
	}
	if e.RunID == "" {
		return ItemFailed, "", "no raw file to analyse: the record was not made by a flow run on this server"
	}
	orig, err := s.cfg.Engine.Run(ctx, e.RunID)
	if err != nil {
		return ItemFailed, "", fmt.Sprintf("the run that made the record (%s): %v", e.RunID, err)
	}
	if orig.StoredPath == "" {
		return ItemFailed, orig.ID, "the record's raw file was never stored (its first run failed before the transfer)"
	}
	flowName := spec.Flow
	if flowName == "" {
		flowName = orig.Flow
	}
	key := RerunKey(spec.Version, flowName, spec.Params, spec.Where)
	if spec.Force {
		key += "-" + campaignID // a run of its own, whatever ran before
	} else if upToDate(e, s.cfg.Version, flowName, spec.Params, spec.Where) {
		return ItemSkipped, e.RunID, "up to date: made by this analysis version with these parameters"
	}
	readers, err := s.cfg.Engine.Readers(ctx, orig.ID)
	if err != nil {
		return ItemPending, "", ""
	}
	meta := maps.Clone(orig.Meta)
	if meta == nil {
		meta = map[string]any{}
	}
	params := map[string]any{}
	for k, v := range spec.Params {
		params[k] = v
	}
	if spec.Where != "" {
		params["where"] = spec.Where
	}
	meta[s.cfg.RecordKey] = recordID
	meta[s.cfg.ParamsKey] = params
	meta["reanalysis_of"] = orig.ID
	meta["campaign"] = campaignID
	run, created, err := s.cfg.Engine.StartRun(ctx, flow.RunSpec{Flow: flowName, SHA256: orig.SHA256, FileName: orig.FileName, Size: orig.Size,
		Agent: orig.Agent, Instrument: orig.Instrument, Meta: meta, Readers: readers,
		RerunKey: key, StoredPath: orig.StoredPath})
	if err != nil {
		if errors.Is(err, flow.ErrNotFound) || errors.Is(err, flow.ErrPermanent) {
			return ItemFailed, "", err.Error()
		}
		return ItemPending, "", ""
	}
	if !created {
		if done, st, m := outcome(run); done {
			if st == ItemDone {
				return ItemSkipped, run.ID, "done already by an identical run"
			}
			return st, run.ID, m
		}
	}
	return ItemStarted, run.ID, ""
}

// upToDate reports whether a record's newest version was made by this
// analysis version and flow with these parameters.
func upToDate(e *catalog.Entry, version, flowName string, params map[string]string, where string) bool {
	p := e.Record.Provenance
	if p == nil || p.Version != version || p.Flow != flowName || where != "" {
		return false
	}
	for k, v := range params {
		if fmt.Sprint(p.Parameters[k]) != v {
			return false
		}
	}
	return true
}

// Get returns a campaign with its progress.
func (s *Service) Get(ctx context.Context, id string) (*Campaign, error) {
	var c Campaign
	var spec string
	var created, updated int64
	var finished sql.NullInt64
	err := s.cfg.DB.Read.QueryRowContext(ctx, `SELECT id, spec, state, created_by, created_at, updated_at, finished_at FROM campaign WHERE id = ?`, id).
		Scan(&c.ID, &spec, &c.State, &c.CreatedBy, &created, &updated, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("campaign %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("campaign %s: %w", id, err)
	}
	var st stored
	json.Unmarshal([]byte(spec), &st)
	c.Spec, c.Version = st.Spec, st.Version
	c.Created, c.Updated = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	if finished.Valid {
		t := time.UnixMicro(finished.Int64).UTC()
		c.Finished = &t
	}
	c.Counts = map[string]int{}
	rows, err := s.cfg.DB.Read.QueryContext(ctx, `SELECT state, count(*) FROM campaign_item WHERE campaign_id = ? GROUP BY state`, id)
	if err != nil {
		return nil, fmt.Errorf("campaign %s: %w", id, err)
	}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("campaign %s: %w", id, err)
		}
		c.Counts[st] = n
		c.Total += n
	}
	rows.Close()
	end := time.Now()
	if c.Finished != nil {
		end = *c.Finished
	}
	if el := end.Sub(c.Created).Seconds(); el > 0 && c.Settled() > 0 {
		c.RatePerSec = float64(c.Settled()) / el
		if left := c.Total - c.Settled(); left > 0 && c.State == StateRunning {
			c.ETA = time.Duration(float64(left) / c.RatePerSec * float64(time.Second))
		}
	}
	if c.Failures, err = s.items(ctx, id, ItemFailed, 100); err != nil {
		return nil, fmt.Errorf("campaign %s: %w", id, err)
	}
	return &c, nil
}

// List returns the newest campaigns, those createdBy made when it is not
// empty.
func (s *Service) List(ctx context.Context, createdBy string, limit int) ([]*Campaign, error) {
	q, args := `SELECT id FROM campaign`, []any{}
	if createdBy != "" {
		q, args = q+` WHERE created_by = ?`, append(args, createdBy)
	}
	rows, err := s.cfg.DB.Read.QueryContext(ctx, q+` ORDER BY created_at DESC LIMIT ?`, append(args, max(limit, 1))...)
	if err != nil {
		return nil, fmt.Errorf("campaigns: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	out := []*Campaign{}
	for _, id := range ids {
		c, err := s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Cancel stops a campaign: its waiting records are not started; runs under
// way finish.
func (s *Service) Cancel(ctx context.Context, id string) (*Campaign, error) {
	s.work.Lock()
	defer s.work.Unlock()
	t := time.Now().UnixMicro()
	tx, err := s.cfg.DB.Write.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE campaign SET state = ?, updated_at = ?, finished_at = ? WHERE id = ? AND state = ?`, StateCancelled, t, t, id, StateRunning)
	if err != nil {
		return nil, fmt.Errorf("cancel campaign %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE campaign_item SET state = ?, updated_at = ? WHERE campaign_id = ? AND state = ?`, ItemCancelled, t, id, ItemPending); err != nil {
			return nil, fmt.Errorf("cancel campaign %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

// RetryFailed runs a campaign's failed records again (their runs from the
// failed step; records that never got a run from the start) and reopens
// the campaign.
func (s *Service) RetryFailed(ctx context.Context, id string) (*Campaign, error) {
	s.work.Lock()
	failed, err := s.items(ctx, id, ItemFailed, 1<<20)
	if err == nil {
		for _, it := range failed {
			state, runID := ItemPending, ""
			if it.RunID != "" {
				if r, rerr := s.cfg.Engine.Run(ctx, it.RunID); rerr == nil && r.State == flow.StateFailed {
					if _, err = s.cfg.Engine.Retry(ctx, it.RunID); err != nil {
						break
					}
					state, runID = ItemStarted, it.RunID
				}
			}
			if err = s.setItem(ctx, id, it.Seq, state, runID, ""); err != nil {
				break
			}
		}
	}
	if err == nil && len(failed) > 0 {
		_, err = s.cfg.DB.Write.ExecContext(ctx, `UPDATE campaign SET state = ?, updated_at = ?, finished_at = NULL WHERE id = ?`, StateRunning, time.Now().UnixMicro(), id)
	}
	s.work.Unlock()
	if err != nil {
		return nil, fmt.Errorf("retry campaign %s: %w", id, err)
	}
	s.poke()
	return s.Get(ctx, id)
}

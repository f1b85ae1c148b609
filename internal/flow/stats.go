package flow

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// StepStats summarises one step of a flow over many runs.
type StepStats struct {
	Name       string        `json:"name"`
	MeanActive time.Duration `json:"mean_active_ns"`
	MinActive  time.Duration `json:"min_active_ns"`
	MaxActive  time.Duration `json:"max_active_ns"`
}

// FlowStats are the figures of the paper's Table 1 and Fig. 4 for one flow:
// runtimes, per-step active time, and overhead (runtime not spent in any
// step: queueing, hand-offs, waiting for workers).
type FlowStats struct {
	Flow           string        `json:"flow"`
	Runs           int           `json:"runs"`
	Failed         int           `json:"failed"`
	MinRuntime     time.Duration `json:"min_runtime_ns"`
	MeanRuntime    time.Duration `json:"mean_runtime_ns"`
	MedianRuntime  time.Duration `json:"median_runtime_ns"`
	MaxRuntime     time.Duration `json:"max_runtime_ns"`
	MeanActive     time.Duration `json:"mean_active_ns"`
	MeanOverhead   time.Duration `json:"mean_overhead_ns"`
	MedianOverhead time.Duration `json:"median_overhead_ns"`
	MaxOverhead    time.Duration `json:"max_overhead_ns"`
	// OverheadShare is total overhead / total runtime.
	OverheadShare float64     `json:"overhead_share"`
	Steps         []StepStats `json:"steps"`
}

// Stats computes per-flow statistics over finished runs created since
// since (zero: all) that the caller may read (q's Principals and All; its
// other fields are ignored).
func (e *Engine) Stats(ctx context.Context, since time.Time, q ListQuery) ([]FlowStats, error) {
	return statsOf(ctx, e.db.Read, since, q)
}

// Stats computes per-flow statistics over every run of a picoflow
// database (the command line, with the database's files at hand).
func Stats(ctx context.Context, db *sql.DB, since time.Time) ([]FlowStats, error) {
	return statsOf(ctx, db, since, ListQuery{All: true})
}

func statsOf(ctx context.Context, db *sql.DB, since time.Time, q ListQuery) ([]FlowStats, error) {
	cond, cargs := readerFilter("r", q.Principals, q.All)
	if cond != "" {
		cond = " AND " + cond
	}
	rows, err := db.QueryContext(ctx, `SELECT r.id, r.flow, r.state, r.created_at, COALESCE(r.finished_at, 0), s.name, s.idx, s.active_us
		FROM run r JOIN step s ON s.run_id = r.id
		WHERE r.created_at >= ? AND r.state IN (?, ?)`+cond+` ORDER BY r.flow, r.created_at, r.id, s.idx`,
		append([]any{since.UnixMicro(), StateSucceeded, StateFailed}, cargs...)...)
	if err != nil {
		return nil, fmt.Errorf("flow stats: %w", err)
	}
	defer rows.Close()
	type runRow struct {
		flow, state       string
		created, finished int64
		steps             []time.Duration
		names             []string
	}
	var runs []*runRow
	var cur *runRow
	var curID string
	for rows.Next() {
		var id, flowName, state, name string
		var created, finished, active int64
		var idx int
		if err := rows.Scan(&id, &flowName, &state, &created, &finished, &name, &idx, &active); err != nil {
			return nil, fmt.Errorf("flow stats: %w", err)
		}
		if id != curID {
			cur = &runRow{flow: flowName, state: state, created: created, finished: finished}
			runs = append(runs, cur)
			curID = id
		}
		cur.steps = append(cur.steps, time.Duration(active)*time.Microsecond)
		cur.names = append(cur.names, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("flow stats: %w", err)
	}
	byFlow := map[string][]*runRow{}
	var order []string
	for _, r := range runs {
		if _, ok := byFlow[r.flow]; !ok {
			order = append(order, r.flow)
		}
		byFlow[r.flow] = append(byFlow[r.flow], r)
	}
	var out []FlowStats
	for _, name := range order {
		fs := FlowStats{Flow: name}
		var runtimes, overheads []time.Duration
		var totalRun, totalOver, totalActive time.Duration
		stepAct := map[string][]time.Duration{}
		var stepOrder []string
		for _, r := range byFlow[name] {
			if r.state == StateFailed {
				fs.Failed++
				continue
			}
			rt := time.Duration(r.finished-r.created) * time.Microsecond
			var act time.Duration
			for i, d := range r.steps {
				act += d
				if _, ok := stepAct[r.names[i]]; !ok {
					stepOrder = append(stepOrder, r.names[i])
				}
				stepAct[r.names[i]] = append(stepAct[r.names[i]], d)
			}
			over := max(rt-act, 0)
			runtimes = append(runtimes, rt)
			overheads = append(overheads, over)
			totalRun += rt
			totalOver += over
			totalActive += act
		}
		fs.Runs = len(runtimes)
		if fs.Runs > 0 {
			slices.Sort(runtimes)
			slices.Sort(overheads)
			n := time.Duration(fs.Runs)
			fs.MinRuntime, fs.MaxRuntime = runtimes[0], runtimes[len(runtimes)-1]
			fs.MeanRuntime, fs.MedianRuntime = totalRun/n, median(runtimes)
			fs.MeanActive = totalActive / n
			fs.MeanOverhead, fs.MedianOverhead, fs.MaxOverhead = totalOver/n, median(overheads), overheads[len(overheads)-1]
			if totalRun > 0 {
				fs.OverheadShare = float64(totalOver) / float64(totalRun)
			}
			for _, s := range stepOrder {
				d := stepAct[s]
				var sum time.Duration
				for _, v := range d {
					sum += v
				}
				fs.Steps = append(fs.Steps, StepStats{Name: s, MeanActive: sum / time.Duration(len(d)), MinActive: slices.Min(d), MaxActive: slices.Max(d)})
			}
		}
		out = append(out, fs)
	}
	return out, nil
}

func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

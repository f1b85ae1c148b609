package server

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/picoflow/picoflow/internal/flow"
)

// metrics are the server's Prometheus series, fed from the flow events.
type metrics struct {
	reg      *prometheus.Registry
	runs     *prometheus.CounterVec
	steps    *prometheus.HistogramVec
	runtime  *prometheus.HistogramVec
	overhead *prometheus.HistogramVec
	// blockStartup is the node start-up time of batch blocks.
	blockStartup prometheus.Histogram
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	buckets := prometheus.ExponentialBuckets(0.001, 2, 22) // 1 ms .. 35 min
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "picoflow_runs_finished_total", Help: "Runs finished, by flow and outcome."}, []string{"flow", "state"})
	m.steps = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "picoflow_step_active_seconds", Help: "Active time of finished steps.", Buckets: buckets}, []string{"flow", "step"})
	m.runtime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "picoflow_run_seconds", Help: "Runtime of succeeded runs, from the file's arrival.", Buckets: buckets}, []string{"flow"})
	m.overhead = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "picoflow_run_overhead_seconds", Help: "Runtime not spent in any step (queueing, hand-offs).", Buckets: buckets}, []string{"flow"})
	m.blockStartup = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "picoflow_block_startup_seconds", Help: "Batch blocks: from submission to their endpoint's first request for work.", Buckets: buckets})
	m.reg.MustRegister(m.runs, m.steps, m.runtime, m.overhead, m.blockStartup,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "picoflow_endpoints_alive", Help: "Compute endpoints heard from within two leases (through any replica)."}, func() float64 {
			eps, _ := s.tasks.Endpoints(context.Background(), time.Now().Add(-time.Hour))
			n := 0
			for _, e := range eps {
				if e.Alive {
					n++
				}
			}
			return float64(n)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "picoflow_tasks_pending", Help: "Tasks waiting for a compute endpoint."}, func() float64 {
			n, _ := s.tasks.PendingCount(context.Background())
			return float64(n)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "picoflow_runs_active", Help: "Runs queued or running."}, func() float64 {
			var n int
			s.db.Read.QueryRow(`SELECT count(*) FROM run WHERE state IN (?, ?)`, flow.StateQueued, flow.StateRunning).Scan(&n)
			return float64(n)
		}),
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// follow feeds the series from the engine's events until ctx ends.
func (m *metrics) follow(ctx context.Context, s *Server) {
	ch, cancel := s.Engine.Events().Subscribe(1024)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			switch {
			case ev.Step != "" && ev.State == flow.StateSucceeded:
				m.steps.WithLabelValues(ev.Flow, ev.Step).Observe(ev.Active.Seconds())
			case ev.Step == "" && (ev.State == flow.StateSucceeded || ev.State == flow.StateFailed):
				m.runs.WithLabelValues(ev.Flow, ev.State).Inc()
				if ev.State != flow.StateSucceeded {
					continue
				}
				if r, err := s.Engine.Run(ctx, ev.RunID); err == nil && r.Finished != nil {
					total := r.Finished.Sub(r.Created)
					var active time.Duration
					for _, st := range r.Steps {
						active += st.Active
					}
					m.runtime.WithLabelValues(ev.Flow).Observe(total.Seconds())
					m.overhead.WithLabelValues(ev.Flow).Observe(max(total-active, 0).Seconds())
				}
			}
		}
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/compute"
	"github.com/picoflow/picoflow/internal/flow"
)

// computeRoutes mounts the endpoint protocol: claim (long poll), heartbeat,
// input download, product upload, completion.
func (s *Server) computeRoutes(mux *http.ServeMux) {
	eps := []string{auth.RoleEndpoint, auth.RoleAdmin}
	mux.Handle("POST /api/v1/compute/claim", auth.Require(http.HandlerFunc(s.claimTask), eps...))
	mux.Handle("POST /api/v1/compute/tasks/{id}/heartbeat", auth.Require(http.HandlerFunc(s.heartbeatTask), eps...))
	mux.Handle("GET /api/v1/compute/tasks/{id}/input", auth.Require(http.HandlerFunc(s.taskInput), eps...))
	mux.Handle("PUT /api/v1/compute/tasks/{id}/products/{name}", auth.Require(http.HandlerFunc(s.taskProduct), eps...))
	mux.Handle("POST /api/v1/compute/tasks/{id}/complete", auth.Require(http.HandlerFunc(s.completeTask), eps...))
	mux.Handle("GET /api/v1/compute/endpoints", auth.Require(http.HandlerFunc(s.listEndpoints), auth.RoleAdmin))
}

// Exclusive runs fn on one server at a time among the replicas sharing
// this server's PostgreSQL database (at once on SQLite), until ctx ends;
// see store.DB.Exclusive.
func (s *Server) Exclusive(ctx context.Context, name string, fn func(ctx context.Context)) {
	s.db.Exclusive(ctx, name, 2*time.Second, fn)
}

// AttachScaler makes the blocks of sc part of the server's view of its
// compute (the endpoints listing and the block start-up metric). Call it
// before sc starts.
func (s *Server) AttachScaler(sc *compute.Scaler) {
	s.mu.Lock()
	s.scaler = sc
	s.mu.Unlock()
	sc.Started = func(b compute.Block) {
		if d, ok := b.Startup(); ok {
			s.metrics.blockStartup.Observe(d.Seconds())
		}
	}
}

// BlockView is a batch block as the API shows it.
type BlockView struct {
	compute.Block
	// StartupSeconds is the node start-up time: from submission to the
	// endpoint's first request for work (absent until then).
	StartupSeconds *float64 `json:"startup_s,omitempty"`
}

// computeState returns the endpoints heard from since since, through any
// replica, and this server's blocks, refreshed from the scheduler.
func (s *Server) computeState(ctx context.Context, since time.Time) ([]compute.EndpointInfo, []compute.Block, error) {
	eps, err := s.tasks.Endpoints(ctx, since)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	sc := s.scaler
	s.mu.Unlock()
	if sc == nil {
		return eps, nil, nil
	}
	blocks, err := sc.Refresh(ctx)
	if err != nil {
		return eps, blocks, fmt.Errorf("blocks: %w", err)
	}
	return eps, blocks, nil
}

// listEndpoints shows the compute endpoints heard from in the last
// ?since= (default 24h), through any replica, and this server's blocks.
func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request) {
	since := 24 * time.Hour
	if v := r.URL.Query().Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("list endpoints: bad since %q", v))
			return
		}
		since = d
	}
	eps, bs, err := s.computeState(r.Context(), time.Now().Add(-since))
	if err != nil {
		writeError(w, http.StatusBadGateway, fmt.Errorf("list endpoints: %w", err))
		return
	}
	if eps == nil {
		eps = []compute.EndpointInfo{}
	}
	blocks := []BlockView{}
	for _, b := range bs {
		v := BlockView{Block: b}
		if d, ok := b.Startup(); ok {
			sec := d.Seconds()
			v.StartupSeconds = &sec
		}
		blocks = append(blocks, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": eps, "blocks": blocks})
}

var endpointLabelRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// endpointName is who holds tasks for the caller: its token's subject,
// with the endpoint's own label (?endpoint=, e.g. a batch block's name)
// in front when it gives one: "block-3@endpoint:blocks". The label tells
// apart processes sharing a token; it can never name another token's
// endpoint, so no endpoint acts for another.
func endpointName(r *http.Request) string {
	subject := auth.FromContext(r.Context()).Subject
	n := r.URL.Query().Get("endpoint")
	if n == "" || !endpointLabelRe.MatchString(n) || "endpoint:"+n == subject {
		return subject
	}
	return n + "@" + subject
}

func (s *Server) claimTask(w http.ResponseWriter, r *http.Request) {
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	t, err := s.tasks.Claim(r.Context(), endpointName(r), min(max(wait, 0), 2*time.Minute))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if t == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Context().Err() != nil {
		// The endpoint left while the task was being handed to it: give it
		// back now rather than when its lease lapses.
		if err := s.tasks.Release(context.WithoutCancel(r.Context()), t.ID, t.Endpoint); err != nil {
			s.log.Warn("release unanswered claim", "task", t.ID, "error", err)
		}
		return
	}
	s.log.Info("task claimed", "task", t.ID, "run_id", t.RunID, "endpoint", t.Endpoint, "attempt", t.Attempts)
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) heldTask(w http.ResponseWriter, r *http.Request) (*compute.Task, bool) {
	t, err := s.tasks.Get(r.Context(), r.PathValue("id"), endpointName(r))
	if errors.Is(err, compute.ErrNotFound) {
		writeError(w, http.StatusNotFound, err)
		return nil, false
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return nil, false
	}
	return t, true
}

func (s *Server) heartbeatTask(w http.ResponseWriter, r *http.Request) {
	if err := s.tasks.Heartbeat(r.Context(), r.PathValue("id"), endpointName(r)); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, compute.ErrNotFound) {
			status = http.StatusNotFound
		}
		writeError(w, status, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) taskInput(w http.ResponseWriter, r *http.Request) {
	t, ok := s.heldTask(w, r)
	if !ok {
		return
	}
	f, err := os.Open(t.Input.Path)
	if err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	defer f.Close()
	fi, _ := f.Stat()
	http.ServeContent(w, r, safeName(t.Input.FileName), fi.ModTime(), f)
}

func (s *Server) taskProduct(w http.ResponseWriter, r *http.Request) {
	t, ok := s.heldTask(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if name != safeName(name) || strings.HasPrefix(name, ".") {
		writeError(w, http.StatusBadRequest, fmt.Errorf("product name %q", name))
		return
	}
	dir := s.runProducts(t.RunID)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	tmp, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	_, err = io.Copy(tmp, http.MaxBytesReader(w, r.Body, 16<<30))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) completeTask(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Result json.RawMessage `json:"result"`
		Error  string          `json:"error"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if err := s.tasks.Complete(r.Context(), r.PathValue("id"), endpointName(r), body.Result, body.Error); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, compute.ErrNotFound) {
			status = http.StatusNotFound
		}
		writeError(w, status, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// taskDone resumes the flow step that handed out a task.
func (s *Server) taskDone(ctx context.Context, t *compute.Task, result json.RawMessage, taskErr error) {
	var out any
	switch {
	case taskErr != nil:
	case t.Kind == "command":
		c := CommandOutput{Where: t.Endpoint}
		if err := json.Unmarshal(result, &c.Result); err != nil || c.Command == "" {
			taskErr = fmt.Errorf("endpoint %s sent no command result: %v", t.Endpoint, err)
		}
		out = c
	default:
		a := AnalyzeOutput{Dir: s.runProducts(t.RunID), Where: t.Endpoint}
		if err := json.Unmarshal(result, &a.Record); err != nil || a.Record == nil {
			taskErr = fmt.Errorf("endpoint %s sent no record: %v", t.Endpoint, err)
		}
		out = a
	}
	if taskErr != nil {
		taskErr = fmt.Errorf("on endpoint %s: %w", t.Endpoint, taskErr)
	}
	if err := s.Engine.Resume(context.WithoutCancel(ctx), t.RunID, t.Step, t.ID, out, taskErr); err != nil {
		s.log.Warn("resume step", "task", t.ID, "run_id", t.RunID, "error", err)
	}
}

// remote hands a step's work to a compute endpoint (step parameter where:
// endpoint) as a task of kind with options, and leaves the step waiting. A
// retried submission reuses the task already queued for this step.
func (s *Server) remote(ctx context.Context, sr *flow.StepRun, kind, path string, options any) (any, error) {
	if t, err := s.tasks.ForStep(ctx, sr.Run.ID, sr.Def.Name, stepIndex(sr)); err == nil && t != nil {
		return flow.Wait{Ref: t.ID}, nil
	}
	o, err := json.Marshal(options)
	if err != nil {
		return nil, err
	}
	t, err := s.tasks.Submit(ctx, sr.Run.ID, stepIndex(sr), kind, compute.Input{FileName: sr.Run.FileName, SHA256: sr.Run.SHA256, Size: sr.Run.Size, Path: path, Options: o,
		Timeout: time.Duration(sr.Def.Timeout).Seconds()})
	if err != nil {
		return nil, err
	}
	return flow.Wait{Ref: t.ID}, nil
}

func stepIndex(sr *flow.StepRun) int {
	for _, st := range sr.Run.Steps {
		if st.Name == sr.Def.Name {
			return st.Index
		}
	}
	return 0
}

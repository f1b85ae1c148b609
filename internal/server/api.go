package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/checksum"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/portal"
	"github.com/picoflow/picoflow/internal/upload"
	"github.com/picoflow/picoflow/internal/upload/tusserver"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	agents := []string{auth.RoleAgent, auth.RoleAdmin}
	mux.Handle("/files/", auth.Require(http.StripPrefix("/files/", s.uploads.Handler()), agents...))
	mux.Handle("GET /api/v1/files/{sha}", auth.Require(http.HandlerFunc(s.getFile), agents...))
	mux.Handle("POST /api/v1/runs", auth.Require(http.HandlerFunc(s.createRun), agents...))
	mux.Handle("GET /api/v1/flows", auth.Require(http.HandlerFunc(s.listFlows), agents...))
	mux.Handle("GET /api/v1/runs", auth.Require(http.HandlerFunc(s.listRuns), agents...))
	mux.Handle("GET /api/v1/runs/{id}", auth.Require(http.HandlerFunc(s.getRun), agents...))
	mux.Handle("POST /api/v1/runs/{id}/retry", auth.Require(http.HandlerFunc(s.retryRun), auth.RoleAdmin))
	mux.Handle("GET /api/v1/events", auth.Require(http.HandlerFunc(s.events), agents...))
	mux.Handle("GET /api/v1/stats", auth.Require(http.HandlerFunc(s.stats), agents...))
	mux.HandleFunc("GET /api/v1/records", s.searchRecords)
	mux.HandleFunc("GET /api/v1/records/{id}", s.getRecord)
	mux.HandleFunc("GET /api/v1/records/{id}/files/{name}", s.getRecordFile)
	mux.HandleFunc("GET /api/v1/records/{id}/versions", s.recordVersions)
	mux.Handle("POST /api/v1/records/{id}/reanalyze", auth.Require(http.HandlerFunc(s.reanalyzeRecord), auth.RoleAdmin))
	curators := []string{auth.RoleAdmin, auth.RoleCurator}
	mux.Handle("POST /api/v1/campaigns", auth.Require(http.HandlerFunc(s.createCampaign), curators...))
	mux.Handle("GET /api/v1/campaigns", auth.Require(http.HandlerFunc(s.listCampaigns), curators...))
	mux.Handle("GET /api/v1/campaigns/{id}", auth.Require(http.HandlerFunc(s.getCampaign), curators...))
	mux.Handle("POST /api/v1/campaigns/{id}/cancel", auth.Require(http.HandlerFunc(s.cancelCampaign), curators...))
	mux.Handle("POST /api/v1/campaigns/{id}/retry", auth.Require(http.HandlerFunc(s.retryCampaign), curators...))
	if s.cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", auth.Require(s.metrics.handler(), auth.RoleMetrics, auth.RoleAdmin))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	s.computeRoutes(mux)
	s.portal.Routes(mux)
	return limitRequests(s.Tokens.Middleware(s.sessionIdentity(mux)), cmp.Or(s.cfg.BodyTimeout, bodyDeadline))
}

// Request limits. Uploads (/files/) have their own: tusd's network timeout
// and the zero-copy PATCH's stall watchdog; the endpoint protocol
// (/api/v1/compute/) has long polls and large products from authenticated
// endpoints. GET requests have no body; a read deadline there would cancel
// long polls and event streams.
const (
	bodyDeadline = 60 * time.Second // to read any other request's body
	maxBody      = 1 << 20          // any other request's body
)

// limitRequests bounds how long and how much a request body may be read,
// so a slow or endless body (an unauthenticated POST /login, say) cannot
// hold a connection and its goroutine for ever.
func limitRequests(next http.Handler, deadline time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead &&
			!strings.HasPrefix(r.URL.Path, "/files/") && !strings.HasPrefix(r.URL.Path, "/api/v1/compute/") {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(deadline))
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		next.ServeHTTP(w, r)
	})
}

// sessionIdentity lets a signed-in portal user read the API (the portal's
// images and files come from it). Only safe methods: state changes through
// a cookie would be cross-site request forgery waiting to happen.
func (s *Server) sessionIdentity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth.FromContext(r.Context()) == nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(r.URL.Path, "/api/") {
			if sess := s.sessions.Get(r); sess != nil {
				r = r.WithContext(auth.WithIdentity(r.Context(), sess.Identity))
			}
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// StepView is a step as the API shows it.
type StepView struct {
	Name     string     `json:"name"`
	Type     string     `json:"type"`
	State    string     `json:"state"`
	Attempts int        `json:"attempts"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	ActiveMS float64    `json:"active_ms"`
	Error    string     `json:"error,omitempty"`
	// Where names the compute endpoint that ran the step ("" on the server).
	Where string `json:"where,omitempty"`
	// Data is what a command step's result.json held.
	Data json.RawMessage `json:"data,omitempty"`
}

// RunView is a run as the API shows it.
type RunView struct {
	ID         string     `json:"id"`
	Flow       string     `json:"flow"`
	SHA256     string     `json:"sha256"`
	FileName   string     `json:"file_name"`
	Size       int64      `json:"size"`
	Agent      string     `json:"agent,omitempty"`
	Instrument string     `json:"instrument,omitempty"`
	UploadID   string     `json:"upload_id,omitempty"`
	State      string     `json:"state"`
	Created    time.Time  `json:"created"`
	Finished   *time.Time `json:"finished,omitempty"`
	RuntimeMS  float64    `json:"runtime_ms,omitempty"`
	Error      string     `json:"error,omitempty"`
	RecordID   string     `json:"record_id,omitempty"`
	Steps      []StepView `json:"steps,omitempty"`
	Alerts     []Alert    `json:"alerts,omitempty"`
	// Degraded names the outside parts a succeeded run's analysis lacked.
	Degraded []string `json:"degraded,omitempty"`
	// Rerun says the run analysed stored content again (a re-analysis).
	Rerun bool `json:"rerun,omitempty"`
}

func viewRun(r *flow.Run) RunView {
	v := RunView{ID: r.ID, Flow: r.Flow, SHA256: r.SHA256, FileName: r.FileName, Size: r.Size, Agent: r.Agent, Instrument: r.Instrument, UploadID: r.UploadID,
		State: r.State, Created: r.Created, Finished: r.Finished, Error: r.Error, RecordID: r.RecordID}
	if r.Finished != nil {
		v.RuntimeMS = float64(r.Finished.Sub(r.Created).Microseconds()) / 1e3
	}
	for _, st := range r.Steps {
		sv := StepView{Name: st.Name, Type: st.Type, State: st.State, Attempts: st.Attempts, Started: st.Started,
			Finished: st.Finished, ActiveMS: float64(st.Active.Microseconds()) / 1e3, Error: st.Error}
		var out struct {
			Where string          `json:"where"`
			Data  json.RawMessage `json:"data"`
		}
		if json.Unmarshal(st.Output, &out) == nil {
			if out.Where != "server" {
				sv.Where = out.Where
			}
			sv.Data = out.Data
		}
		v.Steps = append(v.Steps, sv)
	}
	v.Alerts = RunAlerts(r)
	v.Degraded = RunDegraded(r)
	v.Rerun = r.RerunKey != ""
	return v
}

// RunDegraded names the outside parts a run's analysis lacked (its publish
// step says so).
func RunDegraded(r *flow.Run) []string {
	for _, st := range r.Steps {
		if st.Type == "publish" && st.State == flow.StateSucceeded {
			var p PublishOutput
			if json.Unmarshal(st.Output, &p) == nil {
				return p.Degraded
			}
		}
	}
	return nil
}

// RunAlerts are the operator alerts and information its notify steps sent.
func RunAlerts(r *flow.Run) []Alert {
	var alerts []Alert
	for _, st := range r.Steps {
		if st.Type == "notify" && st.State == flow.StateSucceeded {
			var n NotifyOutput
			if json.Unmarshal(st.Output, &n) == nil {
				alerts = append(alerts, n.Alerts...)
			}
		}
	}
	return alerts
}

// getFile answers "do you have this content?" for an agent that lost track
// of an upload: the runs for that SHA-256.
func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	runs, err := s.Engine.Runs(r.Context(), s.readerQuery(r, flow.ListQuery{SHA256: r.PathValue("sha"), Uploads: true}))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	out := []RunView{}
	for _, run := range runs {
		out = append(out, viewRun(run))
	}
	writeJSON(w, http.StatusOK, map[string]any{"sha256": r.PathValue("sha"), "runs": out})
}

// CreateRunRequest asks the server to start a flow on a finished upload.
type CreateRunRequest struct {
	// Upload is the upload's URL or ID.
	Upload string `json:"upload"`
}

func (s *Server) createRun(w http.ResponseWriter, r *http.Request) {
	var req CreateRunRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("create run: %w", err))
		return
	}
	id := req.Upload[strings.LastIndex(req.Upload, "/")+1:]
	caller := auth.FromContext(r.Context())
	up, err := s.uploads.Get(r.Context(), id)
	if errors.Is(err, tusserver.ErrNotFound) || (err == nil && !s.ownsUpload(caller, up)) {
		// Another caller's upload is as good as absent.
		writeError(w, http.StatusNotFound, fmt.Errorf("create run: upload %s: %w", id, tusserver.ErrNotFound))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if up.Partial {
		writeError(w, http.StatusBadRequest, fmt.Errorf("create run: upload %s is one part of a file sent in parallel: start the run on the final upload made of its parts", id))
		return
	}
	if !up.Complete() {
		writeError(w, http.StatusConflict, fmt.Errorf("create run: upload %s has %d of %d bytes", id, up.Offset, up.Size))
		return
	}
	flowName, sha := up.Meta[upload.MetaFlow], up.Meta[upload.MetaSHA256]
	if err := s.mayStartFlow(caller, flowName); err != nil {
		writeError(w, http.StatusForbidden, fmt.Errorf("create run: %w", err))
		return
	}
	// The sender is who the token says, never a metadata field.
	spec := flow.RunSpec{
		Flow: flowName, SHA256: sha, FileName: up.Meta[upload.MetaFilename],
		Size: up.Size, Agent: caller.Subject, Instrument: up.Meta[upload.MetaInstrument], UploadID: id, Received: up.Received,
		Meta: map[string]any{"source_path": up.Meta[upload.MetaSourcePath], "agent_name": up.Meta[upload.MetaAgent],
			"proposal": up.Meta[upload.MetaProposal], "sample": up.Meta[upload.MetaSample], "operator": up.Meta[upload.MetaOperator],
			"description": up.Meta[upload.MetaDescription], "keywords": up.Meta[upload.MetaKeywords], "license": up.Meta[upload.MetaLicense],
			"derived_from": up.Meta[upload.MetaDerivedFrom]},
		Readers: append([]string{caller.Subject}, s.flowReaders(flowName)...),
	}
	run, created, err := s.Engine.StartRun(r.Context(), spec)
	switch {
	case errors.Is(err, flow.ErrNotFound), errors.Is(err, flow.ErrPermanent):
		writeError(w, http.StatusBadRequest, err)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if created || run.UploadID == id {
		// A new run, or the caller asking again for the run of this very
		// upload (an agent that lost the answer).
		status := http.StatusCreated
		if !created {
			status = http.StatusOK
		}
		writeJSON(w, status, viewRun(run))
		return
	}
	// A run for this content exists. Does this upload hold that content?
	// (The hash was computed on arrival; a caller could declare any.)
	got, err := s.uploadDigest(r.Context(), up)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("create run: %w", err))
		return
	}
	if got != sha {
		q := s.quarantine(up.Path, "upload-"+id+"_"+up.Meta[upload.MetaFilename])
		if q != up.Path {
			s.uploads.Remove(id)
		}
		writeError(w, http.StatusUnprocessableEntity, fmt.Errorf("create run: upload %s: checksum mismatch: declared sha256 %s, received %s (kept in %s); send the file again", id, sha, got, q))
		return
	}
	switch run.State {
	case flow.StateFailed:
		// A failed run never blocks the content: it runs again on the
		// bytes just received.
		run, err = s.Engine.Restart(r.Context(), run.ID, spec)
		if errors.Is(err, flow.ErrNotFailed) {
			writeError(w, http.StatusConflict, fmt.Errorf("create run: run %s for this content was restarted meanwhile; try again", run.ID))
			return
		}
		if err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		s.log.Info("failed run restarted on a new upload", "run_id", run.ID, "upload", id, "agent", caller.Subject)
		writeJSON(w, http.StatusCreated, viewRun(run))
	case flow.StateSucceeded:
		// The same bytes are stored and verified already: this upload is
		// not needed. The sender may read the run it duplicates.
		if err := s.Engine.AddReaders(r.Context(), run.ID, caller.Subject); err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		if err := s.uploads.Remove(id); err != nil {
			s.log.Warn("remove duplicate upload", "upload", id, "error", err)
		}
		writeJSON(w, http.StatusOK, viewRun(run))
	default:
		// Still running on another upload, which may yet turn out bad:
		// keep this one until that run has finished.
		writeError(w, http.StatusConflict, fmt.Errorf("create run: run %s for this content is %s; start again when it has finished", run.ID, run.State))
	}
}

// uploadDigest is the SHA-256 of a complete upload: computed on arrival,
// or read from the file (uploads that came through tusd's chunked path).
func (s *Server) uploadDigest(ctx context.Context, up *tusserver.Upload) (string, error) {
	if d := s.uploads.Digest(up); d != "" {
		return d, nil
	}
	sum, _, err := checksum.File(ctx, up.Path)
	return sum, err
}

// quarantine moves the bytes at src where nothing deletes them, under name
// (made safe and bounded), and returns where they are now (src when the
// move failed).
func (s *Server) quarantine(src, name string) string {
	q := filepath.Join(s.cfg.DataDir, "quarantine", boundedName(safeName(name)))
	os.MkdirAll(filepath.Dir(q), 0o750)
	if err := os.Rename(src, q); err != nil {
		s.log.Error("quarantine", "file", src, "error", err)
		return src
	}
	return q
}

// FlowView is a flow as the API lists it: whether the caller's token may
// start it (agents check their folders against this at start).
type FlowView struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Allowed     bool   `json:"allowed"`
}

func (s *Server) listFlows(w http.ResponseWriter, r *http.Request) {
	caller := auth.FromContext(r.Context())
	out := []FlowView{}
	for _, f := range s.cfg.Flows.Flows {
		out = append(out, FlowView{Name: f.Name, Description: f.Description, Allowed: caller.MayStart(f.Name)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"flows": out})
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	runs, err := s.Engine.Runs(r.Context(), s.readerQuery(r, flow.ListQuery{Flow: q.Get("flow"), State: q.Get("state"), Limit: limit}))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	out := []RunView{}
	for _, run := range runs {
		out = append(out, viewRun(run))
	}
	writeJSON(w, http.StatusOK, out)
}

// getRun returns a run; ?wait=30s holds the request until the run finishes
// (at most 5 minutes), so agents learn the outcome without polling.
func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx := r.Context()
	if !s.mayReadRun(w, r, id) {
		return
	}
	var run *flow.Run
	var err error
	if d, perr := time.ParseDuration(r.URL.Query().Get("wait")); perr == nil && d > 0 {
		wctx, cancel := context.WithTimeout(ctx, min(d, 5*time.Minute))
		run, err = s.Engine.Wait(wctx, id)
		cancel()
	} else {
		run, err = s.Engine.Run(ctx, id)
	}
	if errors.Is(err, flow.ErrNotFound) {
		writeError(w, http.StatusNotFound, err)
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, viewRun(run))
}

func (s *Server) retryRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.Engine.Retry(r.Context(), r.PathValue("id"))
	if errors.Is(err, flow.ErrNotFound) {
		writeError(w, http.StatusNotFound, err)
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, viewRun(run))
}

// events streams run and step events as server-sent events.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	caller := auth.FromContext(r.Context())
	portal.StreamEvents(w, r, s.Engine.Events(), s.Engine.ReadFilter(r.Context(), caller.Principals(), isAdmin(caller)))
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	var since time.Time
	if d, err := time.ParseDuration(r.URL.Query().Get("since")); err == nil {
		since = time.Now().Add(-d)
	}
	st, err := s.Engine.Stats(r.Context(), since, s.readerQuery(r, flow.ListQuery{}))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func principals(r *http.Request) []string {
	return auth.FromContext(r.Context()).Principals()
}

// ParseQuery reads a catalog query from URL parameters: q, from, to
// (YYYY-MM-DD or RFC 3339), instrument, kind, element (repeatable), sort,
// limit, offset.
func ParseQuery(v map[string][]string) (catalog.Query, error) {
	get := func(k string) string {
		if len(v[k]) > 0 {
			return v[k][0]
		}
		return ""
	}
	q, err := catalog.ParseQuery(get("q"))
	if err != nil {
		return q, err
	}
	q.Instruments = append(q.Instruments, v["instrument"]...)
	q.Kinds = append(q.Kinds, v["kind"]...)
	q.Elements = append(q.Elements, v["element"]...)
	q.Sort = get("sort")
	if mb := get("made_before"); mb != "" {
		q.MadeBefore = mb
	}
	for _, p := range []struct {
		k string
		t *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		s := get(p.k)
		if s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t, err = time.Parse("2006-01-02", s)
		}
		if err != nil {
			return q, fmt.Errorf("%s: want YYYY-MM-DD or RFC 3339, got %q", p.k, s)
		}
		*p.t = t
	}
	q.Limit, _ = strconv.Atoi(get("limit"))
	q.Offset, _ = strconv.Atoi(get("offset"))
	return q, nil
}

func (s *Server) searchRecords(w http.ResponseWriter, r *http.Request) {
	q, err := ParseQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	q.Principals = principals(r)
	res, err := s.Catalog.Search(r.Context(), q)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// visibleRecord returns the record named in the path if the caller may see
// it, or writes the error.
func (s *Server) visibleRecord(w http.ResponseWriter, r *http.Request) (*catalog.Entry, bool) {
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		var err error
		if version, err = strconv.Atoi(v); err != nil || version < 1 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("version must be a number from 1, not %q", v))
			return nil, false
		}
	}
	e, err := catalog.GetVersion(r.Context(), s.Catalog, r.PathValue("id"), version, principals(r))
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, err)
		return nil, false
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return nil, false
	}
	return e, true
}

func (s *Server) getRecord(w http.ResponseWriter, r *http.Request) {
	if e, ok := s.visibleRecord(w, r); ok {
		writeJSON(w, http.StatusOK, e)
	}
}

// getRecordFile serves an analysis product (or the raw file) of a record
// the caller may see.
func (s *Server) getRecordFile(w http.ResponseWriter, r *http.Request) {
	e, ok := s.visibleRecord(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	for _, f := range e.Record.Files {
		if f.Name != name {
			continue
		}
		path := filepath.Join(s.runProducts(e.RunID), filepath.Base(name))
		if f.Role == "raw" {
			run, err := s.Engine.Run(r.Context(), e.RunID)
			if err != nil {
				writeError(w, http.StatusNotFound, err)
				return
			}
			path = run.StoredPath
		}
		fh, err := os.Open(path)
		if err != nil {
			writeError(w, http.StatusNotFound, fmt.Errorf("file %s: %w", name, err))
			return
		}
		defer fh.Close()
		fi, _ := fh.Stat()
		setFileHeaders(w, f.MediaType, f.Role == "raw", name)
		// A version's files never change: cached for good. The newest
		// version's change with the next version: revalidated by run.
		if r.URL.Query().Get("version") != "" {
			w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "private, no-cache")
		}
		w.Header().Set("ETag", `"`+e.RunID+`-`+safeName(name)+`"`)
		http.ServeContent(w, r, safeName(name), fi.ModTime(), fh)
		return
	}
	writeError(w, http.StatusNotFound, fmt.Errorf("record %s has no file %q", e.ID, name))
}

// inlineTypes are the media types served for display in the portal (as
// <img>, <video> or fetched data); none of them runs script in a browser.
var inlineTypes = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true, "video/mp4": true,
	"text/csv": true, "text/plain": true, "application/json": true,
}

// setFileHeaders makes a served product harmless in the portal's origin,
// whatever an analysis, a command or an endpoint said its type is: a type
// outside inlineTypes (HTML, SVG, XML, scripts...) goes out as an
// attachment of type application/octet-stream, nothing is sniffed, and a
// sandboxing CSP stops script even in a document opened directly.
func setFileHeaders(w http.ResponseWriter, mediaType string, raw bool, name string) {
	mt, _, _ := mime.ParseMediaType(mediaType)
	h := w.Header()
	if !inlineTypes[mt] || raw {
		mt = "application/octet-stream"
		h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", safeName(name)))
	}
	if strings.HasPrefix(mt, "text/") {
		mt += "; charset=utf-8"
	}
	h.Set("Content-Type", mt)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src 'self'; media-src 'self'")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

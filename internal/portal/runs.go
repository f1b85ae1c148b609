package portal

// The runs dashboard, run pages with failures explained, retries and the
// live event stream.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/compute"
	"github.com/picoflow/picoflow/internal/flow"
)

type barView struct {
	Class, Title string
	Width        float64
}

type runRow struct {
	*flow.Run
	Runtime, Title string
	Bars           []barView
	// Warnings are the quality alerts sent to the operator (drift,
	// saturation, low counts).
	Warnings []string
}

// runWarnings returns the warnings among the alerts a run's steps output
// for the operator (the notify step's).
func runWarnings(r *flow.Run) []string {
	var out []string
	for _, s := range r.Steps {
		var o struct {
			Alerts   []struct{ Level, Message string }
			Degraded []string `json:"degraded"`
		}
		if json.Unmarshal(s.Output, &o) != nil {
			continue
		}
		for _, a := range o.Alerts {
			if a.Level == "warning" {
				out = append(out, a.Message)
			}
		}
		// A publish step says what the record lacks: the run succeeded
		// degraded.
		for _, d := range o.Degraded {
			out = append(out, "degraded: made without "+d)
		}
	}
	return out
}

// runRows lays out the runs' bars on one time scale (the longest run of
// the page fills the width): per step its wait in the queue (ready to
// started) and its active time, and the rest of the run's time as
// hand-off overhead. A running run runs on to now.
func runRows(runs []*flow.Run, legend []string, now time.Time) []runRow {
	var out []runRow
	longest := time.Microsecond
	for _, r := range runs {
		end := now
		if r.Finished != nil {
			end = *r.Finished
		}
		longest = max(longest, end.Sub(r.Created))
	}
	pct := func(d time.Duration) float64 { return 100 * float64(max(d, 0)) / float64(longest) }
	for _, r := range runs {
		end := now
		if r.Finished != nil {
			end = *r.Finished
		}
		total := max(end.Sub(r.Created), time.Microsecond)
		row := runRow{Run: r, Runtime: fmtDur(total), Warnings: runWarnings(r)}
		var active, waited time.Duration
		for _, s := range r.Steps {
			if s.Ready != nil && s.Started != nil && s.Started.After(*s.Ready) {
				w := s.Started.Sub(*s.Ready)
				waited += w
				row.Bars = append(row.Bars, barView{Class: "wait", Width: pct(w), Title: s.Name + " waited in the queue " + fmtDur(w)})
			}
			a := s.Active
			if s.State == flow.StateRunning && s.Started != nil {
				a = now.Sub(*s.Started) // so far
			}
			cls := "s" + strconv.Itoa(min(max(slices.Index(legend, s.Name), 0), 4))
			row.Bars = append(row.Bars, barView{Class: cls, Width: pct(a), Title: s.Name + " " + fmtDur(a)})
			active += a
		}
		gap := max(total-active-waited, 0)
		row.Bars = append(row.Bars, barView{Class: "gap", Width: pct(gap), Title: "hand-off overhead " + fmtDur(gap)})
		row.Title = fmt.Sprintf("runtime %s: active %s, waiting for a worker %s, hand-off overhead %s", fmtDur(total), fmtDur(active), fmtDur(waited), fmtDur(gap))
		out = append(out, row)
	}
	return out
}

// runsSince are the runs page's time filters.
var runsSince = []struct{ Key, Label string }{{"1h", "last hour"}, {"24h", "last day"}, {"168h", "last week"}, {"", "all"}}

func (p *Portal) runs(w http.ResponseWriter, r *http.Request) {
	id := p.cfg.Sessions.Get(r).Identity
	v := r.URL.Query()
	q := flow.ListQuery{State: v.Get("state"), Flow: v.Get("flow"), Limit: 50, Steps: true, Principals: id.Principals(), All: id.Has(auth.RoleAdmin)}
	if d, err := time.ParseDuration(v.Get("since")); err == nil && d > 0 {
		q.Since = time.Now().Add(-d)
	}
	counts, err := p.cfg.Runs.CountRuns(r.Context(), q)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	if b, err := strconv.ParseInt(v.Get("before"), 10, 64); err == nil {
		q.Before = time.UnixMicro(b)
	}
	list, err := p.cfg.Runs.Runs(r.Context(), q)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	legend := []string{"transfer", "analyze", "publish", "notify"}
	total := 0
	for _, n := range counts {
		total += n
	}
	data := struct {
		page
		Runs    []runRow
		Legend  []string
		Compute *computeView
		// Filters and totals.
		State, Flow, Since string
		States             []string
		Flows              []string
		SinceOptions       []struct{ Key, Label string }
		Counts             map[string]int
		Total              int
		Older, Newest      string
	}{page: p.base(r, "Runs", "runs"), Runs: runRows(list, legend, time.Now()), Legend: legend,
		State: q.State, Flow: q.Flow, Since: v.Get("since"), States: []string{flow.StateQueued, flow.StateRunning, flow.StateSucceeded, flow.StateFailed},
		SinceOptions: runsSince, Counts: counts, Total: total}
	for _, f := range p.cfg.Runs.Flows().Flows {
		data.Flows = append(data.Flows, f.Name)
	}
	if len(list) == q.Limit {
		data.Older = withOn("/runs", v, func(c url.Values) { c.Set("before", strconv.FormatInt(list[len(list)-1].Created.UnixMicro(), 10)) })
	}
	if v.Get("before") != "" {
		data.Newest = withOn("/runs", v, func(c url.Values) { c.Del("before") })
	}
	if v.Get("fragment") != "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := p.pages["runs"].ExecuteTemplate(w, "rows", data); err != nil {
			p.log.Error("render runs", "error", err)
		}
		return
	}
	if data.Admin && p.cfg.Compute != nil {
		data.Compute = p.computeView(r.Context())
	}
	p.render(w, http.StatusOK, "runs", data)
}

// computeView is the compute section of the runs page.
type computeView struct {
	Endpoints []compute.EndpointInfo
	Blocks    []blockRow
	Error     string
}

type blockRow struct {
	compute.Block
	StartupText string // node start-up time, "" until the endpoint asked for work
}

func (p *Portal) computeView(ctx context.Context) *computeView {
	eps, blocks, err := p.cfg.Compute(ctx)
	v := &computeView{Endpoints: eps}
	if err != nil {
		v.Error = err.Error()
	}
	for _, b := range blocks {
		row := blockRow{Block: b}
		if d, ok := b.Startup(); ok {
			row.StartupText = fmtDur(d)
		}
		v.Blocks = append(v.Blocks, row)
	}
	if len(v.Endpoints) == 0 && len(v.Blocks) == 0 && v.Error == "" {
		return nil
	}
	return v
}

// mayRead reports whether the signed-in user of r may read run id: one of
// its readers, or an administrator.
func (p *Portal) mayRead(r *http.Request, runID string) bool {
	id := p.cfg.Sessions.Get(r).Identity
	if id.Has(auth.RoleAdmin) {
		return true
	}
	ok, err := p.cfg.Runs.CanRead(r.Context(), runID, id.Principals())
	return err == nil && ok
}

func (p *Portal) run(w http.ResponseWriter, r *http.Request) {
	if !p.mayRead(r, r.PathValue("id")) {
		p.fail(w, r, http.StatusNotFound, "Not found", "There is no such run.")
		return
	}
	run, err := p.cfg.Runs.Run(r.Context(), r.PathValue("id"))
	if errors.Is(err, flow.ErrNotFound) {
		p.fail(w, r, http.StatusNotFound, "Not found", "There is no such run.")
		return
	}
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	where := map[string]string{} // step name -> the endpoint that ran it
	for _, st := range run.Steps {
		var o struct{ Where string }
		if json.Unmarshal(st.Output, &o) == nil && o.Where != "" {
			where[st.Name] = o.Where
		}
	}
	source, _ := run.Meta["source_path"].(string)
	p.render(w, http.StatusOK, "run", struct {
		page
		Run      *flow.Run
		Warnings []string
		Where    map[string]string
		Failure  failure
		Source   string
	}{p.base(r, run.FileName, "runs"), run, runWarnings(run), where, explainFailure(run), source})
}

// failure says in words what went wrong with a run, what to do, and
// whether retrying the failed step can help.
type failure struct {
	What, Todo string
	Retry      bool
}

func explainFailure(r *flow.Run) failure {
	if r.State != flow.StateFailed {
		return failure{}
	}
	e := r.Error
	has := func(s ...string) bool {
		for _, x := range s {
			if strings.Contains(e, x) {
				return true
			}
		}
		return false
	}
	switch {
	case has("checksum mismatch", "size mismatch"):
		return failure{What: "The bytes the server received are not the file the instrument PC hashed: the transfer was corrupted, or the file changed while it was being sent.",
			Todo: "Nothing was analysed. The agent sends the file again by itself; if this keeps happening, check the instrument PC's disk and network."}
	case has("no longer matches its sha256", "stored file", "is missing"):
		return failure{What: "The server's stored copy of this file is missing or has changed since it arrived.",
			Todo: "The copy is left where it is for the facility to look at. Restore it from a backup or send the original again."}
	case has("malformed emd file", "not a valid HDF5 file", "unsupported emd layout"):
		return failure{What: "The file could not be read as an EMD file. It is probably incomplete (the instrument was still writing it, or its disk was full) or not an EMD file at all.",
			Todo: "Retrying reads the same bytes and fails the same way. Check the original on the instrument PC and send it again once it is complete."}
	case has("dataset too large", "out of memory", "worker process crashed"):
		return failure{What: "The file is larger, or stranger, than the analysis may take on: it was stopped to protect the server.",
			Todo: "Ask the facility to raise the analysis memory limit (--analysis-memory) if the file is genuine, then retry.", Retry: true}
	case has("bad analysis parameter", "unknown analysis parameter"):
		return failure{What: "The flow gives the analysis a parameter it does not know or cannot use.",
			Todo: "An administrator corrects the flow's parameters (or the campaign's) and retries.", Retry: true}
	}
	return failure{What: "A step failed; the error is below.", Todo: "If the cause is gone (a service was down, a disk was full), retry from the failed step.", Retry: true}
}

func (p *Portal) retry(w http.ResponseWriter, r *http.Request) {
	s := p.cfg.Sessions.Get(r)
	if !s.CSRFValid(r.PostFormValue("csrf")) {
		p.fail(w, r, http.StatusForbidden, "Forbidden", errCSRF.Error())
		return
	}
	if !s.Identity.Has(auth.RoleAdmin) {
		p.fail(w, r, http.StatusForbidden, "Forbidden", "Only administrators can retry runs.")
		return
	}
	if _, err := p.cfg.Runs.Retry(r.Context(), r.PathValue("id")); err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Retry failed", err.Error())
		return
	}
	http.Redirect(w, r, "/runs/"+url.PathEscape(r.PathValue("id")), http.StatusSeeOther)
}

func (p *Portal) runEvents(w http.ResponseWriter, r *http.Request) {
	id := p.cfg.Sessions.Get(r).Identity
	StreamEvents(w, r, p.cfg.Runs.Events(), p.cfg.Runs.ReadFilter(r.Context(), id.Principals(), id.Has(auth.RoleAdmin)))
}

// StreamEvents sends a broker's run and step events as server-sent events
// ("event: run", JSON data) until the client goes away, with a comment
// every 15 s to keep proxies from closing the stream.
func StreamEvents(w http.ResponseWriter, r *http.Request, b *flow.Broker, visible func(runID string) bool) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch, cancel := b.Subscribe(256)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	fmt.Fprint(w, ": picoflow events\n\n")
	fl.Flush()
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if !visible(ev.RunID) {
				continue
			}
			b, _ := json.Marshal(ev)
			fmt.Fprintf(w, "event: run\ndata: %s\n\n", b)
		}
		fl.Flush()
	}
}

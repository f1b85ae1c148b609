package agent

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/replicas"
	"github.com/picoflow/picoflow/internal/upload"
)

// dispatch starts uploads and waits for flows, from the ledger.
func (a *Agent) dispatch(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		a.runOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-t.C:
		}
	}
}

// runOnce starts work on rows that are due and not already in flight.
func (a *Agent) runOnce(ctx context.Context) {
	sending, err := a.ledger.due(ctx, []string{StateReady, StateUploading, StateUploaded}, 64)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Error("read ledger", "error", err)
		}
		return
	}
	waiting, err := a.ledger.due(ctx, []string{StateStarted}, 64)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Error("read ledger", "error", err)
		}
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	busy := 0
	for _, send := range a.inFlight {
		if send {
			busy++
		}
	}
	for _, e := range sending {
		if _, ok := a.inFlight[e.ID]; ok || busy >= a.cfg.Uploads {
			continue
		}
		busy++
		a.inFlight[e.ID] = true
		a.wg.Go(func() {
			defer a.done(e.ID)
			a.deliver(ctx, e)
		})
	}
	for _, e := range waiting {
		if _, ok := a.inFlight[e.ID]; ok || len(a.inFlight) >= 64 {
			continue
		}
		a.inFlight[e.ID] = false
		a.wg.Go(func() {
			defer a.done(e.ID)
			a.await(ctx, e)
		})
	}
}

func (a *Agent) done(id int64) {
	a.mu.Lock()
	delete(a.inFlight, id)
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func backoff(attempts int) time.Time {
	d := time.Duration(1<<min(attempts, 6)) * time.Second // 1 s ... 64 s
	return time.Now().Add(d)
}

// serverError says why the server did not serve a request: it refused the
// agent's token (the operator must fix it; files wait), or it could not be
// reached.
func serverError(err error) error {
	if errors.Is(err, upload.ErrUnauthorized) {
		return fmt.Errorf("the server refuses this agent's token (check PICOFLOW_TOKEN; files wait): %w", err)
	}
	return fmt.Errorf("server unreachable: %w", err)
}

// retryLater records a transient failure and schedules another try.
func (a *Agent) retryLater(ctx context.Context, e *Entry, state, uploadURL string, err error) {
	if ctx.Err() != nil {
		return
	}
	a.log.Warn("will retry", "file", e.Path, "state", state, "error", err)
	if uerr := a.ledger.update(ctx, e.ID, state, uploadURL, e.RunID, err.Error(), backoff(e.Attempts)); uerr != nil {
		a.log.Error("update ledger", "error", uerr)
	}
	a.changed(ctx, e.ID)
}

func (a *Agent) fail(ctx context.Context, e *Entry, err error) {
	a.log.Error("file failed", "file", e.Path, "error", err)
	if uerr := a.ledger.update(ctx, e.ID, StateFailed, e.UploadURL, e.RunID, err.Error(), time.Time{}); uerr != nil {
		a.log.Error("update ledger", "error", uerr)
	}
	a.changed(ctx, e.ID)
}

// deliver gets one file to the server and its flow started. Each stage is
// recorded before the next begins, and every server call is idempotent, so
// it can be interrupted anywhere.
func (a *Agent) deliver(ctx context.Context, e *Entry) {
	// Does the server already have this content for this flow (an earlier
	// attempt finished, or the ledger was lost)?
	if run, err := a.api.runFor(ctx, e.SHA256, e.Flow); err != nil {
		a.retryLater(ctx, e, e.State, e.UploadURL, serverError(err))
		return
	} else if run != nil {
		a.started(ctx, e, run)
		return
	}
	url := e.UploadURL
	if e.State != StateUploaded {
		fi, err := os.Stat(e.Path)
		if err != nil || fi.Size() != e.Size || fi.ModTime().UnixMicro() != e.ModTime.UnixMicro() {
			a.fail(ctx, e, fmt.Errorf("the file changed or vanished before it was sent (%v); a new version is handled as a new file", err))
			return
		}
		meta := map[string]string{
			upload.MetaFilename: filepath.Base(e.Path), upload.MetaSHA256: e.SHA256, upload.MetaFlow: e.Flow,
			upload.MetaAgent: a.cfg.Name, upload.MetaInstrument: a.cfg.Instrument, upload.MetaSourcePath: e.Path,
		}
		if f, ok := a.folder(e.Path); ok {
			meta[upload.MetaInstrument] = cmp.Or(f.Instrument, a.cfg.Instrument)
			for k, v := range map[string]string{upload.MetaProposal: f.Proposal, upload.MetaSample: f.Sample, upload.MetaOperator: f.Operator, upload.MetaLicense: f.License} {
				if v != "" {
					meta[k] = v
				}
			}
		}
		// A sidecar beside the file says more about this acquisition.
		sc, err := ReadSidecar(e.Path)
		if err != nil {
			a.log.Warn("sidecar ignored", "file", e.Path, "error", err)
		}
		for k, v := range sc.Meta() {
			meta[k] = v
		}
		if d := sc.DerivedFrom; d != "" {
			// A file beside this one: the SHA-256 this agent computed for
			// it; else the value as given (a SHA-256).
			if !upload.ValidSHA256(d) {
				sum, err := a.ledger.shaOf(ctx, filepath.Join(filepath.Dir(e.Path), filepath.Base(d)))
				if err != nil || sum == "" {
					a.log.Warn("derived_from: the agent has not sent that file", "file", e.Path, "derived_from", d)
				}
				d = sum
			}
			if d != "" {
				meta[upload.MetaDerivedFrom] = d
			}
		}
		uctx, cancel := context.WithTimeout(ctx, 6*time.Hour)
		url, err = a.tus.Upload(uctx, e.Path, e.UploadURL, meta, func(u string) error {
			e.UploadURL = u
			err := a.ledger.update(ctx, e.ID, StateUploading, u, "", "", time.Time{})
			a.changed(ctx, e.ID)
			return err
		})
		cancel()
		if errors.Is(err, upload.ErrRejected) && strings.Contains(err.Error(), "is not configured on this server") {
			// The server's configuration, not the file: it is sent once
			// the server offers the flow again.
			a.retryLater(ctx, e, StateReady, "", fmt.Errorf("waiting for the server to offer flow %q: %w", e.Flow, err))
			return
		}
		if errors.Is(err, upload.ErrRejected) {
			a.fail(ctx, e, err)
			return
		}
		if errors.Is(err, upload.ErrUnauthorized) {
			err = serverError(err)
		}
		if err != nil {
			a.retryLater(ctx, e, StateUploading, url, err)
			return
		}
		if err := a.ledger.update(ctx, e.ID, StateUploaded, url, "", "", time.Time{}); err != nil {
			a.log.Error("update ledger", "error", err)
			return
		}
		e.State, e.UploadURL = StateUploaded, url
		a.changed(ctx, e.ID)
	}
	run, status, err := a.api.startRun(ctx, url)
	switch {
	case status == http.StatusNotFound:
		// The upload is gone: either its run exists (found above next time)
		// or it expired; send the file again.
		a.retryLater(ctx, e, StateReady, "", fmt.Errorf("upload %s is gone at the server", url))
	case status == http.StatusUnprocessableEntity:
		// The bytes that arrived are not the file's (the server kept them
		// aside): send the file again.
		a.retryLater(ctx, e, StateReady, "", err)
	case status == http.StatusBadRequest:
		a.fail(ctx, e, err)
	case err != nil:
		a.retryLater(ctx, e, StateUploaded, url, err)
	default:
		a.started(ctx, e, run)
	}
}

// recheckFailed asks the server, now and then, about the runs of files that
// failed: a run retried at the server (by an administrator, or restarted
// by a new upload) that has succeeded or is going again is followed here.
func (a *Agent) recheckFailed(ctx context.Context) {
	t := time.NewTicker(cmp.Or(a.cfg.RecheckFailed, 2*time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		failed, err := a.ledger.failedWithRuns(ctx, 64)
		if err != nil {
			continue
		}
		for _, e := range failed {
			run, err := a.api.run(ctx, e.RunID)
			if err != nil || run.State == "failed" {
				continue
			}
			a.log.Info("a failed file's run was retried at the server", "file", e.Path, "run_id", run.ID, "state", run.State)
			if run.terminal() {
				a.finished(ctx, e, run)
				continue
			}
			if err := a.ledger.update(ctx, e.ID, StateStarted, e.UploadURL, run.ID, "", time.Time{}); err == nil {
				a.changed(ctx, e.ID)
			}
		}
	}
}

func (a *Agent) started(ctx context.Context, e *Entry, run *runView) {
	if err := a.ledger.update(ctx, e.ID, StateStarted, e.UploadURL, run.ID, "", time.Time{}); err != nil {
		a.log.Error("update ledger", "error", err)
		return
	}
	e.RunID = run.ID
	a.log.Info("flow started", "file", e.Path, "run_id", run.ID, "flow", run.Flow)
	a.changed(ctx, e.ID)
	if run.terminal() {
		a.finished(ctx, e, run)
	}
}

// await long-polls the server until the file's run finishes.
func (a *Agent) await(ctx context.Context, e *Entry) {
	run, err := a.api.waitRun(ctx, e.RunID, 60*time.Second)
	if err != nil {
		a.retryLater(ctx, e, StateStarted, e.UploadURL, serverError(err))
		return
	}
	if run.terminal() {
		a.finished(ctx, e, run)
	}
}

func (a *Agent) finished(ctx context.Context, e *Entry, run *runView) {
	state, msg := StateDone, ""
	if run.State != "succeeded" {
		state, msg = StateFailed, run.Error
	}
	if err := a.ledger.update(ctx, e.ID, state, e.UploadURL, run.ID, msg, time.Time{}); err != nil {
		a.log.Error("update ledger", "error", err)
		return
	}
	var alerts []string
	for _, al := range run.Alerts {
		if al.Level == "warning" {
			alerts = append(alerts, al.Message)
			a.log.Warn("operator alert", "file", filepath.Base(e.Path), "message", al.Message)
			continue
		}
		// Information (the elements found), not an alert.
		a.log.Info("analysis", "file", filepath.Base(e.Path), "result", al.Message)
	}
	if len(alerts) > 0 {
		if err := a.ledger.setAlerts(ctx, e.ID, strings.Join(alerts, "\n")); err != nil {
			a.log.Error("update ledger", "error", err)
		}
	}
	if state == StateDone {
		a.log.Info("flow done", "file", e.Path, "run_id", run.ID, "runtime_ms", run.RuntimeMS, "record_id", run.RecordID)
	} else {
		a.log.Warn("flow failed", "file", e.Path, "run_id", run.ID, "error", msg)
	}
	a.changed(ctx, e.ID)
}

// apiClient is the agent's view of the server's REST API.
type apiClient struct {
	servers *replicas.Set
	token   string
	http    http.Client
}

type runView struct {
	ID        string  `json:"id"`
	Flow      string  `json:"flow"`
	State     string  `json:"state"`
	Error     string  `json:"error"`
	RecordID  string  `json:"record_id"`
	RuntimeMS float64 `json:"runtime_ms"`
	Alerts    []struct {
		Level   string `json:"level"`
		Message string `json:"message"`
	} `json:"alerts"`
}

func (r *runView) terminal() bool { return r.State == "succeeded" || r.State == "failed" }

func (c *apiClient) do(ctx context.Context, method, path string, body any, out any) (int, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return 0, err
		}
	}
	var status int
	var reply []byte
	err := c.servers.Do(ctx, func(base string) error {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		status = resp.StatusCode
		switch status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return fmt.Errorf("%s %s: %s: %w", method, path, resp.Status, replicas.ErrUnavailable)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%s %s: %s: %w", method, path, resp.Status, upload.ErrUnauthorized)
		}
		reply, err = io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		return err
	})
	if err != nil {
		return status, err
	}
	if status >= 300 {
		var e struct{ Error string }
		json.Unmarshal(reply, &e)
		return status, fmt.Errorf("%s %s: %d %s: %s", method, path, status, http.StatusText(status), e.Error)
	}
	if out != nil {
		if err := json.Unmarshal(reply, out); err != nil {
			return status, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return status, nil
}

func (c *apiClient) runFor(ctx context.Context, sha, flowName string) (*runView, error) {
	var out struct{ Runs []runView }
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/files/"+url.PathEscape(sha), nil, &out); err != nil {
		return nil, err
	}
	for i := range out.Runs {
		// A failed run does not count: sending the file again restarts it
		// (the failure may have been the bytes of an earlier attempt).
		if out.Runs[i].Flow == flowName && out.Runs[i].State != "failed" {
			return &out.Runs[i], nil
		}
	}
	return nil, nil
}

type flowView struct {
	Name    string `json:"name"`
	Allowed bool   `json:"allowed"`
}

// flows lists the server's flows and whether this token may start each.
func (c *apiClient) flows(ctx context.Context) ([]flowView, error) {
	var out struct{ Flows []flowView }
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/flows", nil, &out); err != nil {
		return nil, err
	}
	return out.Flows, nil
}

func (c *apiClient) startRun(ctx context.Context, uploadURL string) (*runView, int, error) {
	var out runView
	status, err := c.do(ctx, http.MethodPost, "/api/v1/runs", map[string]string{"upload": uploadURL}, &out)
	if err != nil {
		return nil, status, err
	}
	return &out, status, nil
}

func (c *apiClient) run(ctx context.Context, id string) (*runView, error) {
	var out runView
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/runs/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *apiClient) waitRun(ctx context.Context, id string, d time.Duration) (*runView, error) {
	var out runView
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/runs/"+url.PathEscape(id)+"?wait="+d.String(), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// keepConnection pings the server every KeepConnection while the agent
// runs: a file that comes minutes after the last one then goes on the
// connection kept open (an idle one is closed after 90 s), without the
// TCP and TLS handshakes a new one costs, 1-3 round trips of the link
// (on a 30 ms link with TLS, 60-90 ms, as long as a 10 MB file takes at
// 1 Gbit/s). The first ping, at start, also tells the client what the
// server takes, so the first file is compressed where that pays. A ping
// that fails is only logged: the uploads say why the server is away.
func (a *Agent) keepConnection(ctx context.Context) {
	t := time.NewTicker(cmp.Or(a.cfg.KeepConnection, 45*time.Second))
	defer t.Stop()
	for {
		if err := a.tus.Ping(ctx); err != nil && ctx.Err() == nil {
			a.log.Debug("ping the server", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

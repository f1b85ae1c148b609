package box_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/agent"
	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/box"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/emd/emdtest"
	"github.com/picoflow/picoflow/internal/pgtest"
	"github.com/picoflow/picoflow/internal/sandbox"
	"github.com/picoflow/picoflow/internal/simulate"
)

var workers = sandbox.NewRegistry()

func TestMain(m *testing.M) {
	analysis.RegisterWorkers(workers)
	workers.Main()
	os.Exit(m.Run())
}

// outcomes collects the agent's terminal states by file name.
type outcomes struct{ ch chan agent.Entry }

func (o *outcomes) onChange(e agent.Entry) {
	switch e.State {
	case agent.StateDone, agent.StateFailed, agent.StateDuplicate:
		o.ch <- e
	}
}

func (o *outcomes) next(t *testing.T) agent.Entry {
	t.Helper()
	select {
	case e := <-o.ch:
		return e
	case <-time.After(60 * time.Second):
		t.Fatal("no file finished within 60 s")
	}
	return agent.Entry{}
}

func getJSON(t *testing.T, url, token string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode
}

// TestEndToEnd: a simulated spectrum image written into the instrument
// folder is moved, analysed, catalogued and searchable by its elements; a
// real Velox file too; a truncated file fails with a clear reason and is
// kept; a copy of a file already processed starts nothing.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	o := &outcomes{ch: make(chan agent.Entry, 16)}
	b, err := box.Start(ctx, box.Config{Dir: dir, Workers: workers, Settle: 200 * time.Millisecond, OnChange: o.onChange})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(ctx)
	base := b.Server.URL()

	si := filepath.Join(b.Folders["hyperspectral"], "particles_001.emd")
	truth, err := simulate.WriteSpectrumImage(ctx, si, simulate.SpectrumImageSpec{Width: 48, Height: 40, Support: "C", Elements: []string{"Fe", "Au"}, CountsPerPixel: 300, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	e := o.next(t)
	if e.State != agent.StateDone || e.Path != si {
		t.Fatalf("simulated SI: %+v", e)
	}
	var res catalog.Result
	getJSON(t, base+"/api/v1/records?element=Fe&element=Au", b.AdminToken, &res)
	if res.Total != 1 {
		t.Fatalf("search Fe+Au: %+v", res)
	}
	hit := res.Hits[0]
	want := slices.Clone(truth.Elements)
	if !slices.Contains(want, truth.Support) {
		want = append(want, truth.Support)
	}
	slices.Sort(want)
	if !slices.Equal(hit.Elements, want) || hit.Kind != "hyperspectral" || hit.Instrument != "PicoProbe" || !strings.HasSuffix(hit.Title, ": particles_001.emd") {
		t.Fatalf("record %+v, want elements %v", hit, want)
	}
	// Records are not public by default.
	var anon catalog.Result
	getJSON(t, base+"/api/v1/records", "", &anon)
	if anon.Total != 0 {
		t.Errorf("anonymous search sees %d records", anon.Total)
	}
	// Products are served; the intensity map is a PNG.
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/records/"+hit.ID+"/files/intensity.png", nil)
	req.Header.Set("Authorization", "Bearer "+b.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	png, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(png), "\x89PNG") {
		t.Fatalf("intensity.png: %d, %d bytes", resp.StatusCode, len(png))
	}
	var run struct {
		State  string
		Steps  []struct{ Name, State string }
		Alerts []struct{ Level, Message string }
	}
	getJSON(t, base+"/api/v1/runs/"+e.RunID, b.AdminToken, &run)
	if run.State != "succeeded" || len(run.Steps) != 4 || len(run.Alerts) == 0 {
		t.Fatalf("run %+v", run)
	}

	// A real Velox file.
	src, err := os.ReadFile(emdtest.File(t, "velox/velox11_test_SI_16x16_215kx.emd"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(b.Folders["emd"], "velox11.emd"), src, 0o644)
	if e := o.next(t); e.State != agent.StateDone {
		t.Fatalf("real Velox file: %+v", e)
	}

	// A truncated file: the agent waits for the missing bytes, then sends
	// it after IncompleteAfter... here the header is intact but data is
	// cut, so use a file whose HDF5 end-of-file matches but content is bad:
	// the analysis must fail with a reason, and the file must be kept.
	bad := append([]byte(nil), src...)
	for i := 4096; i < len(bad); i += 3 {
		bad[i] ^= 0x5A
	}
	badPath := filepath.Join(b.Folders["emd"], "damaged.emd")
	os.WriteFile(badPath, bad, 0o644)
	e = o.next(t)
	if e.State != agent.StateFailed || e.Error == "" || e.Path != badPath {
		t.Fatalf("damaged file: %+v", e)
	}
	t.Logf("damaged file error: %s", e.Error)
	if _, err := os.Stat(badPath); err != nil {
		t.Fatalf("damaged source file removed: %v", err)
	}
	getJSON(t, base+"/api/v1/runs/"+e.RunID, b.AdminToken, &run)
	if run.State != "failed" {
		t.Fatalf("damaged run %+v", run)
	}
	// The run page says in words what is wrong, what to do and where the
	// file is, shows the reader's error once, and offers no retry that
	// would fail the same way.
	if _, page := signIn(t, b).get("/runs/" + e.RunID); !strings.Contains(page, "could not be read as an EMD file") || !strings.Contains(page, "Original: <code>"+badPath) ||
		strings.Contains(page, "Retry from the failed step") || strings.Count(page, html.EscapeString(e.Error)) > 1 {
		t.Errorf("failed run page:\n%s", page)
	}

	// The same content under another name: no new run.
	os.WriteFile(filepath.Join(b.Folders["hyperspectral"], "copy.emd"), mustRead(t, si), 0o644)
	if e := o.next(t); e.State != agent.StateDuplicate {
		t.Fatalf("copy: %+v", e)
	}
	var runs []struct{ ID string }
	getJSON(t, base+"/api/v1/runs", b.AdminToken, &runs)
	if len(runs) != 3 {
		t.Fatalf("%d runs, want 3", len(runs))
	}
	// Prometheus series follow the runs; /metrics wants a token.
	if resp, err := http.Get(base + "/metrics"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous /metrics: %v %v", resp.Status, err)
	}
	metricsToken, err := b.Server.Tokens.Create(ctx, "prometheus", "user:prometheus", auth.RoleMetrics)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+metricsToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text := string(m)
		if strings.Contains(text, `picoflow_runs_finished_total{flow="hyperspectral",state="succeeded"} 1`) &&
			strings.Contains(text, `picoflow_runs_finished_total{flow="emd",state="failed"} 1`) &&
			strings.Contains(text, `picoflow_step_active_seconds_count{flow="hyperspectral",step="analyze"} 1`) &&
			strings.Contains(text, `picoflow_run_overhead_seconds_count{flow="hyperspectral"} 1`) &&
			strings.Contains(text, "picoflow_tasks_pending 0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics:\n%s", text)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var stats []struct {
		Flow          string
		Runs          int
		OverheadShare float64 `json:"overhead_share"`
		MeanOverhead  int64   `json:"mean_overhead_ns"`
	}
	getJSON(t, base+"/api/v1/stats", b.AdminToken, &stats)
	for _, s := range stats {
		t.Logf("%s: %d runs, mean overhead %v (%.2f%%)", s.Flow, s.Runs, time.Duration(s.MeanOverhead), 100*s.OverheadShare)
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestEndToEndPostgresCatalog runs a file through the system with the
// catalog in PostgreSQL.
func TestEndToEndPostgresCatalog(t *testing.T) {
	t.Parallel()
	b, e := startWithRecord(t, box.Config{CatalogURL: pgtest.URL(t)})
	var res catalog.Result
	getJSON(t, b.Server.URL()+"/api/v1/records?element=Au", b.AdminToken, &res)
	if res.Total != 1 || res.Hits[0].ID != e.RunID {
		t.Fatalf("search in the postgres catalog: %+v", res)
	}
}

// TestEndToEndPostgres runs the whole system with flows, tasks, tokens and
// the catalog in PostgreSQL, through a compute endpoint too.
func TestEndToEndPostgres(t *testing.T) {
	t.Parallel()
	b, e := startWithRecord(t, box.Config{DatabaseURL: pgtest.URL(t), Endpoints: 1})
	var res catalog.Result
	getJSON(t, b.Server.URL()+"/api/v1/records?element=Au", b.AdminToken, &res)
	if res.Total != 1 || res.Hits[0].ID != e.RunID {
		t.Fatalf("search: %+v", res)
	}
	writeHPCFile(t, b, "pg-hpc.emd")
	deadline := time.Now().Add(60 * time.Second)
	for {
		var runs []struct{ State string }
		getJSON(t, b.Server.URL()+"/api/v1/runs?flow=hpc", b.AdminToken, &runs)
		if len(runs) == 1 && runs[0].State == "succeeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hpc run on postgres: %+v", runs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

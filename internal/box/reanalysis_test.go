package box_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/box"
	"github.com/picoflow/picoflow/internal/buildinfo"
	"github.com/picoflow/picoflow/internal/campaign"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/server"
	"github.com/picoflow/picoflow/internal/simulate"
)

// ingest sends n small spectrum images into a flow's folder and waits until
// every one is published; it returns their record ids.
func ingest(t *testing.T, b *box.Box, flowName string, n int, seed uint64) []string {
	t.Helper()
	for i := range n {
		data, _ := simulated(t, seed+uint64(i))
		os.WriteFile(filepath.Join(b.Folders[flowName], fmt.Sprintf("si_%d_%d.emd", seed, i)), data, 0o644)
	}
	return waitPublished(t, b, flow.ListQuery{Flow: flowName}, n)
}

// waitPublished waits until n runs of the query (uploads only) have
// succeeded and returns their records.
func waitPublished(t *testing.T, b *box.Box, q flow.ListQuery, n int) []string {
	t.Helper()
	q.State, q.Uploads, q.All, q.Limit = flow.StateSucceeded, true, true, 1000
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		runs, err := b.Server.Engine.Runs(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == n {
			var ids []string
			for _, r := range runs {
				ids = append(ids, r.RecordID)
			}
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d files published", len(runs), n)
		}
	}
}

// waitCampaign polls a campaign through the API until it is no longer
// running.
func waitCampaign(t *testing.T, b *box.Box, token, id string) campaign.Campaign {
	t.Helper()
	var c campaign.Campaign
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if st := getJSON(t, b.Server.URL()+"/api/v1/campaigns/"+id, token, &c); st != 200 {
			t.Fatalf("campaign %s: %d", id, st)
		}
		if c.State != campaign.StateRunning {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("campaign still running: %+v", c.Counts)
		}
	}
}

func startCampaign(t *testing.T, b *box.Box, token string, spec campaign.Spec) (int, campaign.Campaign) {
	t.Helper()
	body, _ := json.Marshal(spec)
	st, out, _ := call(t, http.MethodPost, b.Server.URL()+"/api/v1/campaigns", token, bytes.NewReader(body))
	var c campaign.Campaign
	json.Unmarshal(out, &c)
	if st == http.StatusCreated {
		c = waitCampaign(t, b, token, c.ID)
	} else {
		t.Logf("campaign refused: %d %s", st, out)
	}
	return st, c
}

// TestReanalysisCampaign: records carry their provenance; a campaign with
// new parameters makes exactly one new version of each record it selects
// (old versions and their products stay readable), a second identical
// campaign starts nothing, a campaign runs only over records its creator
// can see, and only administrators and curators may start one.
func TestReanalysisCampaign(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	flows, err := flow.ParseConfig([]byte(`
flows:
  - name: eds-a
    steps: [{name: transfer}, {name: analyze}, {name: publish, params: {visible_to: ["group:a"]}}]
  - name: eds-b
    steps: [{name: transfer}, {name: analyze}, {name: publish, params: {visible_to: ["group:b"]}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	b := startBox(t, box.Config{Settle: 200 * time.Millisecond, Flows: &flows})
	a := ingest(t, b, "eds-a", 3, 300)
	bIDs := ingest(t, b, "eds-b", 2, 400)

	// Provenance of a first analysis.
	e, err := b.Server.Catalog.Get(ctx, a[0], []string{auth.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	run, _ := b.Server.Engine.Run(ctx, e.RunID)
	host, _ := os.Hostname()
	p := e.Record.Provenance
	if p == nil || p.Version != buildinfo.Current().Version || p.Analysis != "picoflow hyperspectral" || p.Input.SHA256 != run.SHA256 ||
		p.Input.Size != run.Size || p.Run != run.ID || p.Flow != "eds-a" || p.Machine != host || p.Parameters["fwhm_mn_kev"] != 0.13 ||
		p.Parameters["min_significance"] != 5.0 || p.Parameters["detectors"] != "all" || p.Finished.Before(p.Started) || e.Version != 1 {
		t.Fatalf("provenance: %+v (run %s, sha %s)", p, run.ID, run.SHA256)
	}

	curator, _ := b.Server.Tokens.Create(ctx, "curator", "user:carol", auth.RoleCurator, "group:a")
	agentTok := b.AgentToken
	if st, _ := startCampaign(t, b, agentTok, campaign.Spec{Query: "kind:hyperspectral", Params: map[string]string{"min_significance": "7"}}); st != http.StatusForbidden {
		t.Errorf("an agent started a campaign: %d", st)
	}
	if st, _ := startCampaign(t, b, curator, campaign.Spec{Query: "kind:hyperspectral", Params: map[string]string{"bogus": "1"}}); st != http.StatusBadRequest {
		t.Errorf("an unknown parameter: %d", st)
	}

	// The curator of group:a: only group a's three records.
	st, c := startCampaign(t, b, curator, campaign.Spec{Query: "kind:hyperspectral", Params: map[string]string{"min_significance": "7"}, MaxInFlight: 2})
	if st != http.StatusCreated || c.State != campaign.StateDone || c.Total != 3 || c.Counts[campaign.ItemDone] != 3 {
		t.Fatalf("curator's campaign: %d %+v", st, c)
	}
	for _, id := range a {
		vs, err := b.Server.Catalog.Versions(ctx, id, []string{"group:a"})
		if err != nil || len(vs) != 2 || vs[0].Version != 2 || vs[1].Version != 1 {
			t.Fatalf("record %s: %d versions, %v", id, len(vs), err)
		}
		np := vs[0].Record.Provenance
		if np.Parameters["min_significance"] != 7.0 || np.Run == vs[1].Record.Provenance.Run || np.Input.SHA256 != vs[1].Record.Provenance.Input.SHA256 {
			t.Errorf("new version's provenance: %+v", np)
		}
		// The old version and its products stay readable.
		var old catalog.Entry
		if st := getJSON(t, b.Server.URL()+"/api/v1/records/"+id+"?version=1", curator, &old); st != 200 || old.Version != 1 {
			t.Errorf("version 1 of %s: %d", id, st)
		}
		for _, f := range old.Record.Files {
			if f.Role == "intensity-map" {
				if st, _, _ := call(t, http.MethodGet, b.Server.URL()+"/api/v1/records/"+id+"/files/"+f.Name+"?version=1", curator, nil); st != 200 {
					t.Errorf("version 1's %s: %d", f.Name, st)
				}
			}
		}
	}
	for _, id := range bIDs {
		if vs, _ := b.Server.Catalog.Versions(ctx, id, []string{auth.RoleAdmin}); len(vs) != 1 {
			t.Errorf("group b's record %s was re-analysed by a curator of group a (%d versions)", id, len(vs))
		}
	}
	var vv []server.VersionView
	if st := getJSON(t, b.Server.URL()+"/api/v1/records/"+a[0]+"/versions", curator, &vv); st != 200 || len(vv) != 2 || vv[0].Provenance == nil {
		t.Errorf("versions API: %d %d", st, len(vv))
	}

	// The same campaign again (by an administrator, over everything):
	// nothing new for group a; group b gets its one new version.
	st, c = startCampaign(t, b, b.AdminToken, campaign.Spec{Query: "kind:hyperspectral", Params: map[string]string{"min_significance": "7"}})
	if st != http.StatusCreated || c.Total != 5 || c.Counts[campaign.ItemSkipped] != 3 || c.Counts[campaign.ItemDone] != 2 {
		t.Fatalf("second campaign: %d %+v", st, c.Counts)
	}
	st, c = startCampaign(t, b, b.AdminToken, campaign.Spec{Query: "kind:hyperspectral", Params: map[string]string{"min_significance": "7"}})
	if c.Counts[campaign.ItemSkipped] != 5 {
		t.Fatalf("third, identical campaign: %+v", c.Counts)
	}
	for _, id := range slices.Concat(a, bIDs) {
		if vs, _ := b.Server.Catalog.Versions(ctx, id, []string{auth.RoleAdmin}); len(vs) != 2 {
			t.Errorf("record %s has %d versions, want 2", id, len(vs))
		}
	}
	// New parameters: new versions, one per record even when the same
	// campaign is started twice at once (the runs are keyed).
	spec, _ := json.Marshal(campaign.Spec{Query: "kind:hyperspectral", Params: map[string]string{"min_significance": "6", "fwhm_mn_kev": "0.125"}})
	var twins []campaign.Campaign
	for range 2 {
		st, out, _ := call(t, http.MethodPost, b.Server.URL()+"/api/v1/campaigns", b.AdminToken, bytes.NewReader(spec))
		var c campaign.Campaign
		if json.Unmarshal(out, &c); st != http.StatusCreated {
			t.Fatalf("twin campaign: %d %s", st, out)
		}
		twins = append(twins, c)
	}
	runs := map[string]bool{}
	for _, tw := range twins {
		c := waitCampaign(t, b, b.AdminToken, tw.ID)
		if c.Counts[campaign.ItemDone]+c.Counts[campaign.ItemSkipped] != 5 {
			t.Fatalf("twin campaign with new parameters: %+v", c.Counts)
		}
	}
	for _, id := range slices.Concat(a, bIDs) {
		vs, _ := b.Server.Catalog.Versions(ctx, id, []string{auth.RoleAdmin})
		if len(vs) != 3 {
			t.Errorf("record %s has %d versions after twin campaigns, want 3", id, len(vs))
		}
		runs[vs[0].RunID] = true
	}
	if len(runs) != 5 {
		t.Errorf("%d runs made the newest versions of 5 records", len(runs))
	}
	if e, _ := b.Server.Catalog.Get(ctx, a[1], []string{auth.RoleAdmin}); e.Version != 3 || e.Record.Provenance.Parameters["fwhm_mn_kev"] != 0.125 {
		t.Errorf("third version: %d %+v", e.Version, e.Record.Provenance.Parameters)
	}
	// Re-analysis runs are not what an agent sees for its content.
	var files struct{ Runs []server.RunView }
	if st := getJSON(t, b.Server.URL()+"/api/v1/files/"+run.SHA256, b.AdminToken, &files); st != 200 || len(files.Runs) != 1 || files.Runs[0].ID != run.ID {
		t.Errorf("runs for the content: %d %+v", st, files.Runs)
	}
}

// TestDegradedRunRepaired: a movie analysed while ffmpeg is missing makes a
// run marked degraded (not silently succeeded) and a record that says what
// it lacks; once ffmpeg is there, an administrator's re-run makes a new,
// complete version with the video. (Not parallel: it changes PATH.)
func TestDegradedRunRepaired(t *testing.T) {
	ctx := context.Background()
	path := os.Getenv("PATH")
	t.Setenv("PATH", t.TempDir()) // no ffmpeg; the worker processes inherit it
	b := startBox(t, box.Config{Settle: 200 * time.Millisecond})
	if _, err := simulate.WriteMovie(ctx, filepath.Join(b.Folders["spatiotemporal"], "nofm.emd"), simulate.MovieSpec{Frames: 8, Width: 64, Height: 64, Particles: 4, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	var run server.RunView
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		runs, _ := b.Server.Engine.Runs(ctx, flow.ListQuery{Flow: "spatiotemporal", State: flow.StateSucceeded, All: true})
		if len(runs) == 1 {
			getJSON(t, b.Server.URL()+"/api/v1/runs/"+runs[0].ID, b.AdminToken, &run)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the movie was not processed")
		}
	}
	if len(run.Degraded) != 1 || run.Degraded[0] != "ffmpeg: not installed, no video" {
		t.Fatalf("run without ffmpeg: degraded %q", run.Degraded)
	}
	e, _ := b.Server.Catalog.Get(ctx, run.RecordID, []string{auth.RoleAdmin})
	hasVideo := func(e *catalog.Entry) bool {
		for _, f := range e.Record.Files {
			if f.Role == "video" {
				return true
			}
		}
		return false
	}
	if hasVideo(e) || len(e.Record.Provenance.Degraded) != 1 {
		t.Fatalf("degraded record: video %v, degraded %q", hasVideo(e), e.Record.Provenance.Degraded)
	}
	// A setup problem is told to the operator, not published as a finding.
	for _, w := range e.Record.Analysis.Warnings {
		if strings.Contains(w, "ffmpeg") {
			t.Errorf("the record's science warnings carry a setup problem: %q", w)
		}
	}
	told := false
	for _, al := range run.Alerts {
		told = told || al.Level == "warning" && strings.Contains(al.Message, "setup at the facility: ffmpeg")
	}
	if !told {
		t.Errorf("the operator is not told ffmpeg is missing: %+v", run.Alerts)
	}
	// ffmpeg installed: the administrator re-runs the record.
	os.Setenv("PATH", path)
	if st, _, _ := call(t, http.MethodPost, b.Server.URL()+"/api/v1/records/"+e.ID+"/reanalyze", b.AgentToken, nil); st != http.StatusForbidden {
		t.Errorf("an agent re-ran a record: %d", st)
	}
	st, out, _ := call(t, http.MethodPost, b.Server.URL()+"/api/v1/records/"+e.ID+"/reanalyze", b.AdminToken, nil)
	var c campaign.Campaign
	if json.Unmarshal(out, &c); st != http.StatusCreated {
		t.Fatalf("re-run: %d %s", st, out)
	}
	if c = waitCampaign(t, b, b.AdminToken, c.ID); c.Counts[campaign.ItemDone] != 1 {
		t.Fatalf("re-run campaign: %+v", c)
	}
	e, _ = b.Server.Catalog.Get(ctx, run.RecordID, []string{auth.RoleAdmin})
	if e.Version != 2 || !hasVideo(e) || len(e.Record.Provenance.Degraded) != 0 || len(e.Record.Provenance.Software) == 0 || e.Record.Provenance.Software[0].Name != "ffmpeg" {
		t.Fatalf("repaired record: version %d, video %v, provenance %+v", e.Version, hasVideo(e), e.Record.Provenance)
	}
}

// TestCampaignOnEndpoint: --where endpoint sends a campaign's analyses to a
// compute endpoint, and the new version's provenance names it.
func TestCampaignOnEndpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startBox(t, box.Config{Settle: 200 * time.Millisecond, Endpoints: 1})
	ids := ingest(t, b, "hyperspectral", 1, 500)
	if e, _ := b.Server.Catalog.Get(ctx, ids[0], []string{auth.RoleAdmin}); e.Record.Provenance.Machine != mustHost(t) {
		t.Fatalf("first analysis ran on %q, not the server", e.Record.Provenance.Machine)
	}
	_, c := startCampaign(t, b, b.AdminToken, campaign.Spec{Query: "kind:hyperspectral", Where: "endpoint"})
	if c.Counts[campaign.ItemDone] != 1 {
		t.Fatalf("campaign on an endpoint: %+v %+v", c.Counts, c.Failures)
	}
	e, _ := b.Server.Catalog.Get(ctx, ids[0], []string{auth.RoleAdmin})
	if want := b.Endpoints[0].Name; e.Version != 2 || e.Record.Provenance.Machine == mustHost(t) || !strings.HasPrefix(e.Record.Provenance.Machine, want) {
		t.Fatalf("re-analysis on an endpoint: version %d, machine %q (endpoint %q)", e.Version, e.Record.Provenance.Machine, want)
	}
}

func mustHost(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

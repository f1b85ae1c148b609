package box_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/box"
	"github.com/picoflow/picoflow/internal/campaign"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/flow"
)

// TestExperimentMetadata: a sidecar beside a data file says who took it,
// what it is and under which licence, and the record says so (creator a
// person, description, keywords, sample, SPDX licence), searchable; without
// an operator the creator is the instrument, never the agent's host. People
// allowed to edit (administrators, curators, the operator) change the
// description as a new version with who and when; others cannot; a later
// re-analysis keeps the edit.
func TestExperimentMetadata(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startBox(t, box.Config{Settle: 200 * time.Millisecond, Public: true}) // everyone sees; not everyone edits
	dir := b.Folders["hyperspectral"]
	os.WriteFile(filepath.Join(dir, "ptni.yaml"), []byte("operator: Ada Lovelace\nproposal: GUP-81234\nsample: PtNi octahedra on C\n"+
		"description: In situ heating, 300 C, second area\nkeywords: [catalysis, octahedra]\nlicense: CC-BY-4.0\n"), 0o644)
	data, _ := simulated(t, 700)
	os.WriteFile(filepath.Join(dir, "ptni.emd"), data, 0o644)
	data2, _ := simulated(t, 701)
	os.WriteFile(filepath.Join(dir, "plain.emd"), data2, 0o644)
	ids := waitPublished(t, b, flow.ListQuery{}, 2)
	var withSidecar, plain *catalog.Entry
	for _, id := range ids {
		e, err := b.Server.Catalog.Get(ctx, id, []string{auth.RoleAdmin})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(e.Title(), "ptni") {
			withSidecar = e
		} else {
			plain = e
		}
	}
	r := withSidecar.Record
	if r.Operator() != "Ada Lovelace" || r.UserDescription() != "In situ heating, 300 C, second area" || !slices.Equal(r.Keywords(), []string{"catalysis", "octahedra"}) ||
		r.Subject("sample") != "PtNi octahedra on C" || r.Subject("proposal") != "GUP-81234" || len(r.RightsList) != 1 || r.RightsList[0].RightsIdentifier != "CC-BY-4.0" ||
		withSidecar.Description() != "In situ heating, 300 C, second area" {
		t.Fatalf("record from the sidecar: creators %+v, subjects %+v, rights %+v, descriptions %+v", r.Creators, r.Subjects, r.RightsList, r.Descriptions)
	}
	if !strings.HasPrefix(withSidecar.Title(), "PtNi octahedra on C: EDS spectrum image") {
		t.Errorf("title without the sample: %q", withSidecar.Title())
	}
	if c := plain.Record.Creators; len(c) != 1 || c[0].NameType != "Organizational" || strings.Contains(c[0].Name, "agent:") {
		t.Errorf("creator without an operator: %+v", c)
	}
	for _, q := range []string{"octahedra", "catalysis", "Lovelace"} {
		res, _ := b.Server.Catalog.Search(ctx, catalog.Query{Text: q, Principals: []string{auth.RoleAdmin}})
		if res.Total != 1 || res.Hits[0].ID != withSidecar.ID {
			t.Errorf("search %q: %d", q, res.Total)
		}
	}

	// The proposal's page: its records at a glance.
	anon := newBrowser(t, b.Server.URL())
	if code, page := anon.get("/proposals/GUP-81234"); code != 200 || !strings.Contains(page, "Proposal GUP-81234") || !strings.Contains(page, "1 record, acquired") ||
		!strings.Contains(page, "ptni.emd") || strings.Contains(page, "plain.emd") {
		t.Errorf("proposal page: %d", code)
	}
	if _, page := anon.get("/records/" + withSidecar.ID); !strings.Contains(page, `href="/proposals/GUP-81234"`) || !strings.Contains(page, "operator Ada Lovelace") {
		t.Errorf("record page lacks the experiment line")
	}

	// Edits through the portal.
	if err := b.Server.Accounts.Set(ctx, "bob", "pw-bob-long-enough", auth.RoleAdmin); err != nil { // a second admin
		t.Fatal(err)
	}
	if err := b.Server.Accounts.Set(ctx, "eve", "pw-eve-long-enough", "group:other"); err != nil {
		t.Fatal(err)
	}
	edit := func(user, pw string, desc string) int {
		u := newBrowser(t, b.Server.URL())
		_, login := u.get("/login")
		u.post("/login", url.Values{"csrf": {csrfOf(t, login)}, "user": {user}, "password": {pw}, "next": {"/search"}})
		_, page := u.get("/records/" + withSidecar.ID)
		if !strings.Contains(page, `name="csrf"`) {
			return http.StatusNotFound
		}
		code, _ := u.post("/records/"+withSidecar.ID+"/edit", url.Values{"csrf": {csrfOf(t, page)}, "description": {desc},
			"keywords": {"catalysis, octahedra, sintering"}, "sample": {"PtNi octahedra on C"}, "license": {"CC-BY-4.0"}})
		return code
	}
	if code := edit("eve", "pw-eve-long-enough", "vandalised"); code != http.StatusForbidden {
		t.Fatalf("a signed-in user who is not an editor: %d", code)
	}
	if code := edit("bob", "pw-bob-long-enough", "In situ heating to 300 C; area 2 of 3"); code != http.StatusOK {
		t.Fatalf("edit by an administrator: %d", code)
	}
	vs, _ := b.Server.Catalog.Versions(ctx, withSidecar.ID, []string{auth.RoleAdmin})
	if len(vs) != 2 {
		t.Fatalf("%d versions after an edit", len(vs))
	}
	nr := vs[0].Record
	if nr.UserDescription() != "In situ heating to 300 C; area 2 of 3" || len(nr.Edits) != 1 || nr.Edits[0].By != "user:bob" ||
		!slices.Contains(nr.Edits[0].Changes, "description changed") || !slices.Contains(nr.Edits[0].Changes, "keywords: +sintering") ||
		vs[1].Record.UserDescription() != "In situ heating, 300 C, second area" || vs[0].RunID != vs[1].RunID {
		t.Fatalf("edited version: %+v %q", nr.Edits, nr.UserDescription())
	}
	// A re-analysis keeps what people wrote.
	body, _ := json.Marshal(campaign.Spec{Records: []string{withSidecar.ID}, Force: true})
	st, out, _ := call(t, http.MethodPost, b.Server.URL()+"/api/v1/campaigns", b.AdminToken, bytes.NewReader(body))
	var c campaign.Campaign
	if json.Unmarshal(out, &c); st != http.StatusCreated {
		t.Fatalf("campaign: %d %s", st, out)
	}
	waitCampaign(t, b, b.AdminToken, c.ID)
	e, _ := b.Server.Catalog.Get(ctx, withSidecar.ID, []string{auth.RoleAdmin})
	if e.Version != 3 || e.Record.UserDescription() != "In situ heating to 300 C; area 2 of 3" || !slices.Contains(e.Record.Keywords(), "sintering") ||
		len(e.Record.Edits) != 1 || e.Record.Operator() != "Ada Lovelace" {
		t.Fatalf("re-analysis after an edit: version %d, %q, %v", e.Version, e.Record.UserDescription(), e.Record.Keywords())
	}
}

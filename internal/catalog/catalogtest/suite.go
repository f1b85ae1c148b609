// Package catalogtest holds the behaviour every catalog.Index backend must
// show, as one suite run against each backend.
package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/record"
)

// NewEntry builds a catalog entry for tests.
func NewEntry(id, title string, created time.Time, instrument, kind string, elements []string, visibleTo ...string) *catalog.Entry {
	t := created.UTC()
	return &catalog.Entry{
		ID: id,
		Record: &record.Record{
			ID:           id,
			Titles:       []record.Title{{Title: title}},
			Descriptions: []record.Description{{Description: "description of " + title, DescriptionType: "Abstract"}},
			Subjects:     []record.Subject{{Subject: "electron microscopy"}},
			Instrument:   record.Instrument{Name: instrument, AcquisitionStart: &t},
			Analysis:     &record.Analysis{Kind: kind, Elements: elements},
		},
		VisibleTo: visibleTo,
		Published: created.Add(time.Minute),
	}
}

// RunSuite runs the suite; newIndex returns an empty index per subtest.
func RunSuite(t *testing.T, newIndex func(t *testing.T) catalog.Index) {
	ctx := context.Background()
	day := func(d int) time.Time { return time.Date(2026, 10, d, 12, 0, 0, 0, time.UTC) }
	seed := func(t *testing.T) catalog.Index {
		x := newIndex(t)
		for _, e := range []*catalog.Entry{
			NewEntry("a", "Gold nanoparticles on carbon", day(1), "PicoProbe", "hyperspectral", []string{"Au", "C"}, "group:picoprobe"),
			NewEntry("b", "Iron oxide spectrum image", day(5), "PicoProbe", "hyperspectral", []string{"Fe", "O", "C"}, catalog.Public),
			NewEntry("c", "Copper grid movie", day(9), "PicoProbe", "image_stack", nil, "user:alice"),
			NewEntry("d", "Gold and copper alloy", day(20), "Titan", "hyperspectral", []string{"Au", "Cu", "C"}, "group:picoprobe", "user:bob"),
			NewEntry("e", "Nanoparticle growth (in situ)", time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC), "Titan", "image_stack", nil, catalog.Public),
		} {
			if err := x.Put(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		return x
	}
	ids := func(r *catalog.Result) []string {
		var out []string
		for _, h := range r.Hits {
			out = append(out, h.ID)
		}
		return out
	}
	search := func(t *testing.T, x catalog.Index, q catalog.Query) *catalog.Result {
		t.Helper()
		r, err := x.Search(ctx, q)
		if err != nil {
			t.Fatalf("search %+v: %v", q, err)
		}
		return r
	}
	admin := []string{catalog.Admin}

	t.Run("GetRespectsACL", func(t *testing.T) {
		t.Parallel()
		x := seed(t)
		e, err := x.Get(ctx, "a", []string{"group:picoprobe"})
		if err != nil || e.Title() != "Gold nanoparticles on carbon" || !slices.Equal(e.Elements(), []string{"Au", "C"}) {
			t.Fatalf("get a as group member: %v %+v", err, e)
		}
		if !e.Created().Equal(day(1)) {
			t.Fatalf("created %v, want %v", e.Created(), day(1))
		}
		if _, err := x.Get(ctx, "a", []string{"user:mallory"}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("get a as outsider: %v, want ErrNotFound", err)
		}
		if _, err := x.Get(ctx, "b", nil); err != nil {
			t.Fatalf("get public b anonymously: %v", err)
		}
		if _, err := x.Get(ctx, "c", admin); err != nil {
			t.Fatalf("admin get c: %v", err)
		}
		if _, err := x.Get(ctx, "zzz", admin); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("get missing: %v", err)
		}
	})

	t.Run("SearchRespectsACL", func(t *testing.T) {
		t.Parallel()
		x := seed(t)
		cases := []struct {
			who  []string
			want []string
		}{
			{nil, []string{"e", "b"}},
			{[]string{"user:alice"}, []string{"e", "c", "b"}},
			{[]string{"user:bob"}, []string{"e", "d", "b"}},
			{[]string{"group:picoprobe"}, []string{"e", "d", "b", "a"}},
			{admin, []string{"e", "d", "c", "b", "a"}},
		}
		for _, tc := range cases {
			r := search(t, x, catalog.Query{Principals: tc.who})
			if got := ids(r); !slices.Equal(got, tc.want) || r.Total != len(tc.want) {
				t.Errorf("%v sees %v (total %d), want %v", tc.who, got, r.Total, tc.want)
			}
		}
	})

	// Principals compare exactly, in search (hits and facet counts) as in
	// Get: group:ALPHA is not group:alpha.
	t.Run("PrincipalsCompareExactly", func(t *testing.T) {
		t.Parallel()
		x := newIndex(t)
		for _, e := range []*catalog.Entry{
			NewEntry("lo", "Secret alpha titanium", day(1), "PicoProbe", "hyperspectral", []string{"Ti"}, "group:alpha"),
			NewEntry("up", "Upper ALPHA vanadium", day(2), "Titan", "hyperspectral", []string{"V"}, "group:ALPHA"),
		} {
			if err := x.Put(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct{ who, want, el string }{{"group:ALPHA", "up", "V"}, {"group:alpha", "lo", "Ti"}, {"group:Alpha", "", ""}} {
			for _, text := range []string{"", "alpha"} {
				r := search(t, x, catalog.Query{Principals: []string{tc.who}, Text: text})
				want := []string{}
				if tc.want != "" {
					want = []string{tc.want}
				}
				if got := ids(r); !slices.Equal(append([]string{}, got...), want) || r.Total != len(want) {
					t.Errorf("%s searching %q sees %v (total %d), want %v", tc.who, text, got, r.Total, want)
				}
				var els []string
				for _, f := range r.Facets[catalog.FacetElement] {
					els = append(els, f.Value)
				}
				if (tc.el == "" && len(els) > 0) || (tc.el != "" && !slices.Equal(els, []string{tc.el})) {
					t.Errorf("%s searching %q: element facets %v, want [%s]", tc.who, text, els, tc.el)
				}
			}
			_, err := x.Get(ctx, "up", []string{tc.who})
			if (err == nil) != (tc.want == "up") {
				t.Errorf("%s get up: %v", tc.who, err)
			}
		}
	})

	t.Run("FreeText", func(t *testing.T) {
		t.Parallel()
		x := seed(t)
		cases := []struct {
			text string
			want []string
		}{
			{"gold", []string{"d", "a"}},
			{"GOLD copper", []string{"d"}},
			{`"copper alloy"`, []string{"d"}},
			{`"alloy copper"`, nil},
			{"nano*", []string{"e", "a"}},
			{"Fe", []string{"b"}},
			{"in-situ", []string{"e"}},
			{`gold" OR "x`, []string{"d", "a"}}, // our OR, never the backend's syntax
			{`NEAR(gold copper) AND ) '; DROP TABLE record; --`, nil},
			{"*", []string{}},
		}
		for _, tc := range cases {
			r := search(t, x, catalog.Query{Text: tc.text, Principals: admin})
			if got := ids(r); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("%q: %v, want %v", tc.text, got, tc.want)
			}
		}
		r := search(t, x, catalog.Query{Text: "gold", Principals: admin, Sort: catalog.SortRelevance})
		if r.Total != 2 {
			t.Errorf("relevance search: %d hits", r.Total)
		}
	})

	t.Run("FiltersAndFacets", func(t *testing.T) {
		t.Parallel()
		x := seed(t)
		r := search(t, x, catalog.Query{Principals: admin, From: day(2), To: day(21)})
		if got := ids(r); !slices.Equal(got, []string{"d", "c", "b"}) {
			t.Errorf("date range: %v", got)
		}
		// The month facet ignores the date filter so the histogram stays whole.
		if m := r.Facets[catalog.FacetMonth]; !slices.Equal(m, []catalog.FacetValue{{Value: "2026-10", Count: 4}, {Value: "2026-11", Count: 1}}) {
			t.Errorf("month facet: %v", m)
		}
		r = search(t, x, catalog.Query{Principals: admin, Instruments: []string{"Titan"}})
		if got := ids(r); !slices.Equal(got, []string{"e", "d"}) {
			t.Errorf("instrument filter: %v", got)
		}
		if f := r.Facets[catalog.FacetInstrument]; !slices.Equal(f, []catalog.FacetValue{{Value: "PicoProbe", Count: 3}, {Value: "Titan", Count: 2}}) {
			t.Errorf("instrument facet (disjunctive): %v", f)
		}
		if f := r.Facets[catalog.FacetKind]; !slices.Equal(f, []catalog.FacetValue{{Value: "hyperspectral", Count: 1}, {Value: "image_stack", Count: 1}}) {
			t.Errorf("kind facet within Titan: %v", f)
		}
		r = search(t, x, catalog.Query{Principals: admin, Elements: []string{"Au", "C"}})
		if got := ids(r); !slices.Equal(got, []string{"d", "a"}) {
			t.Errorf("elements Au AND C: %v", got)
		}
		if f := r.Facets[catalog.FacetElement]; !slices.Equal(f, []catalog.FacetValue{{Value: "Au", Count: 2}, {Value: "C", Count: 2}, {Value: "Cu", Count: 1}}) {
			t.Errorf("element facet: %v", f)
		}
		r = search(t, x, catalog.Query{Principals: nil, Kinds: []string{"hyperspectral"}})
		if got := ids(r); !slices.Equal(got, []string{"b"}) || r.Facets[catalog.FacetElement][0] != (catalog.FacetValue{Value: "C", Count: 1}) {
			t.Errorf("anonymous hyperspectral: %v %v", got, r.Facets)
		}
	})

	t.Run("SortAndPage", func(t *testing.T) {
		t.Parallel()
		x := seed(t)
		r := search(t, x, catalog.Query{Principals: admin, Sort: catalog.SortOldest, Limit: 2, Offset: 1})
		if got := ids(r); !slices.Equal(got, []string{"b", "c"}) || r.Total != 5 {
			t.Errorf("oldest, page 2 of 2: %v (total %d)", got, r.Total)
		}
	})

	t.Run("SearchLanguage", func(t *testing.T) {
		t.Parallel()
		x := seed(t)
		// f: gold found by the analysis, not named in the text; a Titan
		// at 300 kV and 80 kx.
		f := NewEntry("f", "Nanoparticles on a holey film", day(21), "PicoProbe", "hyperspectral", []string{"Au", "Pt", "Ni"}, catalog.Public)
		f.Record.Instrument.Model = "Titan"
		f.Record.Instrument.AcceleratingVoltage = &record.Quantity{Value: 300, Unit: "kV"}
		f.Record.Instrument.Magnification = &record.Quantity{Value: 80000, Unit: "x"}
		g := NewEntry("g", "Low-voltage image", day(22), "PicoProbe", "image", nil, catalog.Public)
		g.Record.Instrument.AcceleratingVoltage = &record.Quantity{Value: 80, Unit: "kV"}
		g.Record.Instrument.Magnification = &record.Quantity{Value: 500000, Unit: "x"}
		for _, e := range []*catalog.Entry{f, g} {
			if err := x.Put(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			text string
			want []string
		}{
			{"gold", []string{"f", "d", "a"}},
			{"platinum", []string{"f"}},
			{"platinum nickel", []string{"f"}},
			{"instrument:Titan", []string{"e", "d"}},
			{"date:2026-10 gold", []string{"f", "d", "a"}},
			{"date:2026-11", []string{"e"}},
			{"spectr", []string{"b"}},
			{"Fe OR Pt", []string{"f", "b"}},
			{"Au OR Pt", []string{"f", "d", "a"}},
			{"magnification:<100000", []string{"f"}},
			{"gold NOT copper", []string{"f", "a"}},
			{"gold -copper -holey", []string{"a"}},
			{"-gold -nanoparticle", []string{"g", "c", "b"}},
			{"Titan", []string{"e", "f", "d"}},
			{`"gold and"`, []string{"d"}},
			{"voltage:>=200kV", []string{"f"}},
			{"voltage:<100000V", []string{"g"}},
			{"magnification:>100kx", []string{"g"}},
			{"element:gold kind:hyperspectral 2026", []string{"f", "d", "a"}},
			{"2019", nil},
		} {
			q, err := catalog.ParseQuery(tc.text)
			if err != nil {
				t.Fatalf("%s: %v", tc.text, err)
			}
			q.Principals = admin
			if got := ids(search(t, x, q)); !slices.Equal(got, tc.want) {
				t.Errorf("%s: %v, want %v", tc.text, got, tc.want)
			}
		}
	})

	t.Run("Versions", func(t *testing.T) {
		t.Parallel()
		x := seed(t)
		made := func(e *catalog.Entry, version, run string) *catalog.Entry {
			e.RunID = run
			e.Record.Provenance = &record.Provenance{Analysis: "picoflow hyperspectral", Version: version}
			return e
		}
		// a was published without a run (version 1); a re-analysis run
		// makes version 2, and its retried publication replaces version 2.
		v2 := made(NewEntry("a", "Gold nanoparticles, re-analysed", day(1), "PicoProbe", "hyperspectral", []string{"Au", "C", "Ti"}, "group:picoprobe"),
			"v0.2.0", "r2")
		if err := x.Put(ctx, v2); err != nil || v2.Version != 2 {
			t.Fatalf("re-analysis: version %d, %v", v2.Version, err)
		}
		again := made(NewEntry("a", "Gold nanoparticles, re-analysed (retried)", day(1), "PicoProbe", "hyperspectral", []string{"Au", "C", "Ti"}, "group:picoprobe"),
			"v0.2.0", "r2")
		if err := x.Put(ctx, again); err != nil || again.Version != 2 {
			t.Fatalf("retried publication: version %d, %v", again.Version, err)
		}
		e, err := x.Get(ctx, "a", admin)
		if err != nil || e.Version != 2 || e.Title() != "Gold nanoparticles, re-analysed (retried)" {
			t.Fatalf("newest: %+v %v", e, err)
		}
		vs, err := x.Versions(ctx, "a", []string{"group:picoprobe"})
		if err != nil || len(vs) != 2 || vs[0].Version != 2 || vs[1].Version != 1 || vs[1].Title() != "Gold nanoparticles on carbon" || vs[0].RunID != "r2" {
			t.Fatalf("versions: %d %v", len(vs), err)
		}
		if _, err := x.Versions(ctx, "a", []string{"user:mallory"}); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("versions of a record mallory cannot see: %v", err)
		}
		if old, err := catalog.GetVersion(ctx, x, "a", 1, admin); err != nil || !slices.Equal(old.Elements(), []string{"Au", "C"}) {
			t.Errorf("version 1: %v", err)
		}
		// Search sees the newest version only.
		if r := search(t, x, catalog.Query{Principals: admin, Elements: []string{"Ti"}}); !slices.Equal(ids(r), []string{"a"}) {
			t.Errorf("newest elements not indexed: %v", ids(r))
		}
		// A late publication of an older run does not replace the newest.
		v3 := made(NewEntry("a", "third", day(1), "PicoProbe", "hyperspectral", []string{"Au"}, "group:picoprobe"), "v0.3.0", "r3")
		if err := x.Put(ctx, v3); err != nil || v3.Version != 3 {
			t.Fatal(v3.Version, err)
		}
		late := made(NewEntry("a", "late retry of r2", day(1), "PicoProbe", "hyperspectral", []string{"Au"}, "group:picoprobe"), "v0.2.0", "r2")
		if err := x.Put(ctx, late); err != nil || late.Version != 2 {
			t.Fatal(late.Version, err)
		}
		if e, _ := x.Get(ctx, "a", admin); e.Title() != "third" {
			t.Errorf("a late older version replaced the newest: %q", e.Title())
		}
		// Made before an analysis version: a (v0.3.0) and d (v0.1.0).
		d := made(NewEntry("d", "Gold and copper alloy", day(20), "Titan", "hyperspectral", []string{"Au", "Cu", "C"}, "group:picoprobe", "user:bob"), "v0.1.0", "rd")
		if err := x.Put(ctx, d); err != nil {
			t.Fatal(err)
		}
		if r := search(t, x, catalog.Query{Principals: admin, MadeBefore: "v0.2.0"}); !slices.Equal(ids(r), []string{"d"}) {
			t.Errorf("made before v0.2.0: %v", ids(r))
		}
		if r := search(t, x, catalog.Query{Principals: admin, MadeBefore: "v0.10.0"}); !slices.Equal(ids(r), []string{"d", "a"}) {
			t.Errorf("made before v0.10.0: %v", ids(r))
		}
		if err := x.Delete(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := x.Versions(ctx, "a", admin); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("versions after delete: %v", err)
		}
	})

	t.Run("PutReplacesAndDeleteRemoves", func(t *testing.T) {
		t.Parallel()
		x := seed(t)
		e := NewEntry("a", "Platinum catalyst", day(1), "PicoProbe", "hyperspectral", []string{"Pt"}, catalog.Public)
		if err := x.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
		if r := search(t, x, catalog.Query{Text: "gold", Principals: admin}); !slices.Equal(ids(r), []string{"d"}) {
			t.Errorf("old text still found: %v", ids(r))
		}
		if r := search(t, x, catalog.Query{Text: "platinum"}); !slices.Equal(ids(r), []string{"a"}) {
			t.Errorf("new text, now public: %v", ids(r))
		}
		if r := search(t, x, catalog.Query{Principals: admin, Elements: []string{"Au"}}); !slices.Equal(ids(r), []string{"d"}) {
			t.Errorf("old elements still indexed: %v", ids(r))
		}
		if err := x.Delete(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := x.Delete(ctx, "a"); err != nil {
			t.Fatalf("second delete: %v", err)
		}
		if r := search(t, x, catalog.Query{Text: "platinum", Principals: admin}); r.Total != 0 {
			t.Errorf("deleted entry found")
		}
		if _, err := x.Get(ctx, "a", admin); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("get deleted: %v", err)
		}
		// The unfiltered view's counts follow replacements and deletions.
		r := search(t, x, catalog.Query{Principals: admin})
		if r.Total != 4 || !slices.Equal(r.Facets[catalog.FacetKind], []catalog.FacetValue{{Value: "hyperspectral", Count: 2}, {Value: "image_stack", Count: 2}}) ||
			!slices.Equal(r.Facets[catalog.FacetElement], []catalog.FacetValue{{Value: "C", Count: 2}, {Value: "Au", Count: 1}, {Value: "Cu", Count: 1}, {Value: "Fe", Count: 1}, {Value: "O", Count: 1}}) ||
			!slices.Equal(r.Facets[catalog.FacetMonth], []catalog.FacetValue{{Value: "2026-10", Count: 3}, {Value: "2026-11", Count: 1}}) {
			t.Errorf("unfiltered view after replace and delete: total %d, facets %v", r.Total, r.Facets)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		x := newIndex(t)
		for i, e := range []*catalog.Entry{
			{ID: "", Record: &record.Record{}, VisibleTo: []string{catalog.Public}},
			{ID: "x", VisibleTo: []string{catalog.Public}},
			{ID: "x", Record: &record.Record{}},
		} {
			if err := x.Put(ctx, e); !errors.Is(err, catalog.ErrInvalid) {
				t.Errorf("entry %d: %v, want ErrInvalid", i, err)
			}
		}
	})

	t.Run("HostileMetadataStoredVerbatim", func(t *testing.T) {
		t.Parallel()
		x := newIndex(t)
		title := `<script>alert("x")</script> '; DROP TABLE record; -- ` + "\u202e\x00"
		if err := x.Put(ctx, NewEntry("h", title, day(3), "PicoProbe", "hyperspectral", nil, catalog.Public)); err != nil {
			t.Fatal(err)
		}
		e, err := x.Get(ctx, "h", nil)
		// NUL becomes U+FFFD (PostgreSQL cannot store it); the rest is kept.
		if err != nil || e.Title() != strings.ReplaceAll(title, "\x00", "\uFFFD") {
			t.Fatalf("hostile title round trip: %v %q", err, fmt.Sprint(e.Title()))
		}
	})
}

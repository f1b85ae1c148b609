package catalogtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/catalog"
)

var (
	words = []string{"gold", "iron", "oxide", "particle", "nanoparticle", "catalyst", "graphene", "defect", "film", "alloy", "grain",
		"boundary", "interface", "core", "shell", "platinum", "copper", "nickel", "cobalt", "zeolite", "support", "growth", "sintering",
		"heating", "in", "situ", "liquid", "cell", "tomography", "map", "spectrum", "image", "movie", "series", "tilt", "survey"}
	instruments = []string{"PicoProbe", "Titan", "Talos", "Spectra", "JEOL ARM"}
	kinds       = []string{"hyperspectral", "image_stack", "image", "spectrum"}
	elementSet  = []string{"C", "O", "Si", "Fe", "Ni", "Co", "Cu", "Zn", "Ag", "Au", "Pt", "Pd", "Ti", "Al", "Mg", "Ca", "Na", "K", "S", "P",
		"Cl", "Cr", "Mn", "Mo", "W", "Zr", "Ce", "La", "N", "F"}
)

// Populate fills an index with n synthetic entries: titles from a small
// vocabulary, five instruments, four kinds, elements, two years of
// acquisition dates, and ACLs over 20 groups with a fifth public.
func Populate(tb testing.TB, x catalog.Index, n int) {
	tb.Helper()
	r := rand.New(rand.NewPCG(42, 42))
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var batch []*catalog.Entry
	flush := func() {
		if bp, ok := x.(catalog.BatchPutter); ok {
			if err := bp.PutMany(context.Background(), batch); err != nil {
				tb.Fatal(err)
			}
		} else {
			for _, e := range batch {
				if err := x.Put(context.Background(), e); err != nil {
					tb.Fatal(err)
				}
			}
		}
		batch = batch[:0]
	}
	for i := range n {
		title := ""
		for k := 0; k < 3+r.IntN(4); k++ {
			title += words[r.IntN(len(words))] + " "
		}
		var els []string
		for _, k := range r.Perm(len(elementSet))[:r.IntN(5)] {
			els = append(els, elementSet[k])
		}
		acl := []string{fmt.Sprintf("group:g%d", r.IntN(20))}
		if r.IntN(5) == 0 {
			acl = append(acl, catalog.Public)
		}
		created := start.Add(time.Duration(r.Int64N(int64(730 * 24 * time.Hour))))
		batch = append(batch, NewEntry(fmt.Sprintf("r%06d", i), title, created, instruments[r.IntN(len(instruments))], kinds[r.IntN(len(kinds))], els, acl...))
		if len(batch) == 5000 {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

// Queries is a representative mix of portal searches.
var Queries = map[string]catalog.Query{
	"text+acl+dates": {Text: "gold particle", Principals: []string{"user:alice", "group:g3"}, From: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)},
	"browse-admin":   {Principals: []string{catalog.Admin}},
	"facets-member":  {Principals: []string{"group:g7"}, Kinds: []string{"hyperspectral"}, Elements: []string{"Au"}},
	"prefix-public":  {Text: "nano*"},
	"relevance":      {Text: "catalyst sintering", Principals: []string{"group:g1", "group:g2"}, Sort: catalog.SortRelevance},
}

// BenchSearch times each query of Queries on a populated index.
func BenchSearch(b *testing.B, x catalog.Index) {
	for name, q := range Queries {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := x.Search(context.Background(), q); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/search")
		})
	}
}

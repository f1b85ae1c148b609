package portal

// The search page: query, facets, the date histogram, filter chips, a
// proposal's summary.

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/catalog"
)

const pageSize = 20

type monthBar struct {
	Label, URL string
	Count      int
	Height     int
	On         bool
}

// histogram lays the month facet on a continuous time axis: a bar for every
// month from the first to the last (years when that is more than four
// years), empty ones included, each a link to its interval.
func histogram(v url.Values, q catalog.Query, months []catalog.FacetValue) []monthBar {
	counts := map[time.Time]int{}
	var first, last time.Time
	for _, m := range months {
		t, err := time.Parse("2006-01", m.Value)
		if err != nil {
			continue
		}
		counts[t] += m.Count
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
	}
	if first.IsZero() {
		return nil
	}
	step, label := func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }, "2006-01"
	if (last.Year()-first.Year())*12+int(last.Month()-first.Month()) >= 48 {
		step, label = func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }, "2006"
		byYear := map[time.Time]int{}
		for t, n := range counts {
			byYear[time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC)] += n
		}
		counts = byYear
		first, last = time.Date(first.Year(), 1, 1, 0, 0, 0, 0, time.UTC), time.Date(last.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
	}
	maxN := 1
	for _, n := range counts {
		maxN = max(maxN, n)
	}
	var out []monthBar
	for t := first; !t.After(last); t = step(t) {
		end := step(t).AddDate(0, 0, -1)
		n := counts[t]
		on := !q.From.IsZero() && !q.From.Before(t) && !q.To.IsZero() && !q.To.After(end.AddDate(0, 0, 1))
		h := 0
		if n > 0 {
			h = max(4, 100*n/maxN)
		}
		out = append(out, monthBar{Label: t.Format(label), Count: n, Height: h, On: on,
			URL: with(v, func(c url.Values) { c.Set("from", t.Format("2006-01-02")); c.Set("to", end.Format("2006-01-02")) })})
	}
	return out
}

type facetValue struct {
	Value, URL string
	Count      int
	On         bool
}

type facetView struct {
	Name, Title string
	Values      []facetValue
}

// ParseQuery reads a catalog query from URL parameters: the search text
// with its field terms (catalog.ParseQuery; a malformed one stays text),
// the facets, dates and page.
func ParseQuery(v url.Values) catalog.Query {
	q, err := catalog.ParseQuery(strings.TrimSpace(v.Get("q")))
	if err != nil {
		q = catalog.Query{Text: strings.TrimSpace(v.Get("q"))}
	}
	q.Instruments = append(q.Instruments, v["instrument"]...)
	q.Kinds = append(q.Kinds, v["kind"]...)
	q.Elements = append(q.Elements, v["element"]...)
	q.Sort = v.Get("sort")
	if t, err := time.Parse("2006-01-02", v.Get("from")); err == nil {
		q.From = t
	}
	if t, err := time.Parse("2006-01-02", v.Get("to")); err == nil {
		q.To = t.AddDate(0, 0, 1) // inclusive day
	}
	page, _ := strconv.Atoi(v.Get("page"))
	q.Limit, q.Offset = pageSize, max(page-1, 0)*pageSize
	return q
}

// with returns the search URL of v changed by fn, back on page 1.
func with(v url.Values, fn func(url.Values)) string { return withOn("/search", v, fn) }

// withOn is with for another page's query (path: "/runs").
func withOn(path string, v url.Values, fn func(url.Values)) string {
	c := url.Values{}
	for k, vs := range v {
		if k != "page" && k != "fragment" {
			c[k] = slices.Clone(vs)
		}
	}
	fn(c)
	for k, vs := range c {
		if len(vs) == 0 || (len(vs) == 1 && vs[0] == "") {
			delete(c, k)
		}
	}
	return path + "?" + c.Encode()
}

func toggle(v url.Values, key, value string) string {
	return with(v, func(c url.Values) {
		if i := slices.Index(c[key], value); i >= 0 {
			c[key] = slices.Delete(c[key], i, i+1)
		} else {
			c[key] = append(c[key], value)
		}
	})
}

func (p *Portal) search(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := ParseQuery(v)
	q.Principals = p.principals(r)
	res, err := p.cfg.Catalog.Search(r.Context(), q)
	if err != nil {
		p.log.Error("search", "error", err)
		p.fail(w, r, http.StatusInternalServerError, "Search failed", err.Error())
		return
	}
	q = q.Normalize()
	data := struct {
		page
		Q                      catalog.Query
		Result                 *catalog.Result
		Months                 []monthBar
		Facets                 []facetView
		ClearDates, Prev, Next string
		From, To               int
		// PrevWord and NextWord name the pages as the sort orders them.
		PrevWord, NextWord string
		// Raw is the search text as typed (field terms included); URL
		// the facet values set by links (the form carries them on).
		Raw                                   string
		URLKinds, URLElements, URLInstruments []string
		// Chips are the active filters, each with the URL without it.
		Chips []chip
		// Why says what an empty result would find with less.
		Why []chip
		// Proposal heads the page of one proposal's records.
		Proposal *proposalSummary
	}{page: p.base(r, "Search", "search"), Q: q, Result: res, Raw: strings.TrimSpace(v.Get("q")),
		URLKinds: v["kind"], URLElements: v["element"], URLInstruments: v["instrument"]}
	if m := proposalRe.FindStringSubmatch(data.Raw); m != nil && res.Total > 0 {
		ps := &proposalSummary{ID: m[1], Records: res.Total}
		for _, mv := range res.Facets[catalog.FacetMonth] {
			if ps.First == "" || mv.Value < ps.First {
				ps.First = mv.Value
			}
			if mv.Value > ps.Last {
				ps.Last = mv.Value
			}
		}
		for _, f := range []struct {
			name string
			dst  *[]string
		}{{catalog.FacetInstrument, &ps.Instruments}, {catalog.FacetKind, &ps.Kinds}, {catalog.FacetElement, &ps.Elements}} {
			for _, v := range res.Facets[f.name] {
				*f.dst = append(*f.dst, v.Value)
			}
		}
		data.Proposal = ps
	}
	for _, f := range []struct{ key, label string }{{"kind", "type"}, {"element", "element"}, {"instrument", "instrument"}} {
		for _, val := range v[f.key] {
			data.Chips = append(data.Chips, chip{Label: f.label + ": " + val, URL: toggle(v, f.key, val)})
		}
	}
	if v.Get("from") != "" || v.Get("to") != "" {
		data.Chips = append(data.Chips, chip{Label: "acquired " + strings.TrimSpace(v.Get("from")+" – "+v.Get("to")), URL: with(v, func(c url.Values) { c.Del("from"); c.Del("to") })})
	}
	if res.Total == 0 {
		// Say what a looser search would find, with the links to it.
		var keep map[string][]catalog.FacetValue
		try := func(label string, vv url.Values) {
			qq := ParseQuery(vv)
			qq.Principals, qq.Limit = q.Principals, 1
			if r2, err := p.cfg.Catalog.Search(r.Context(), qq); err == nil && r2.Total > 0 {
				data.Why = append(data.Why, chip{Label: fmt.Sprintf("%s: %d record%s", label, r2.Total, map[bool]string{true: "", false: "s"}[r2.Total == 1]), URL: "/search?" + vv.Encode()})
				keep = r2.Facets
			}
		}

		if data.Raw != "" && len(data.Chips) > 0 {
			try("without the filters", url.Values{"q": {data.Raw}})
		}
		if data.Raw != "" {
			vv := url.Values{}
			for k, x := range v {
				if k != "q" && k != "page" {
					vv[k] = x
				}
			}
			try("without “"+data.Raw+"”", vv)
		}
		if keep != nil {
			// The facets stay, counted as the looser search would find.
			res.Facets = keep
		}
	}
	if !q.To.IsZero() {
		data.Q.To = q.To.AddDate(0, 0, -1) // show the inclusive day
	}
	data.Months = histogram(v, q, res.Facets[catalog.FacetMonth])
	data.ClearDates = with(v, func(c url.Values) { c.Del("from"); c.Del("to") })
	for _, f := range []struct{ name, title, key string }{
		{catalog.FacetKind, "Experiment type", "kind"},
		{catalog.FacetElement, "Elements", "element"},
		{catalog.FacetInstrument, "Instrument", "instrument"},
	} {
		fv := facetView{Name: f.name, Title: f.title}
		for _, val := range res.Facets[f.name] {
			fv.Values = append(fv.Values, facetValue{Value: val.Value, Count: val.Count, On: slices.Contains(v[f.key], val.Value), URL: toggle(v, f.key, val.Value)})
		}
		data.Facets = append(data.Facets, fv)
	}
	data.PrevWord, data.NextWord = "newer", "older"
	switch q.Sort {
	case catalog.SortOldest:
		data.PrevWord, data.NextWord = "older", "newer"
	case catalog.SortRelevance:
		data.PrevWord, data.NextWord = "more relevant", "less relevant"
	}
	pageNo := q.Offset/pageSize + 1
	data.From, data.To = q.Offset+1, q.Offset+len(res.Hits)
	if pageNo > 1 {
		data.Prev = with(v, func(c url.Values) { c.Set("page", strconv.Itoa(pageNo-1)) })
	}
	if q.Offset+len(res.Hits) < res.Total {
		data.Next = with(v, func(c url.Values) { c.Set("page", strconv.Itoa(pageNo+1)) })
	}
	p.render(w, http.StatusOK, "search", data)
}

// proposalRe recognises a search for one proposal's records.
var proposalRe = regexp.MustCompile(`^proposal:"?([^"\s]+)"?$`)

// proposalSummary heads a proposal's page: its records at a glance.
type proposalSummary struct {
	ID                           string
	Records                      int
	First, Last                  string // months
	Instruments, Kinds, Elements []string
}

// chip is an active search filter, or a looser search, with its link.
type chip struct{ Label, URL string }

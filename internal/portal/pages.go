package portal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/compute"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/record"
	"github.com/picoflow/picoflow/internal/xray"
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
func with(v url.Values, fn func(url.Values)) string {
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
	return "/search?" + c.Encode()
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

type figure struct {
	URL, Caption, Kind string
	rank               int
	// Frames and FrameTime (s) of a movie, for frame stepping.
	Frames    int
	FrameTime float64
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

type metaRow struct{ Name, Value string }

func q(v *record.Quantity) string {
	if v == nil {
		return ""
	}
	s := strconv.FormatFloat(v.Value, 'g', 6, 64)
	if v.Unit != "" {
		s += " " + v.Unit
	}
	return s
}

// groupDigits writes a whole number with thousands separators
// (1,271,519); others as they are.
func groupDigits(v float64) string {
	if v != math.Trunc(v) || math.Abs(v) >= 1e15 {
		return strconv.FormatFloat(v, 'g', 6, 64)
	}
	s := strconv.FormatInt(int64(math.Abs(v)), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if v < 0 {
		s = "-" + s
	}
	return s
}

func metadataRows(r *record.Record) []metaRow {
	in := r.Instrument
	var rows []metaRow
	add := func(name, val string) {
		if strings.TrimSpace(val) != "" {
			rows = append(rows, metaRow{name, val})
		}
	}
	add("Instrument", strings.TrimSpace(strings.Join([]string{in.Manufacturer, in.Model, in.Name}, " ")))
	if in.AcquisitionStart != nil {
		add("Acquisition start", in.AcquisitionStart.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	add("Accelerating voltage", q(in.AcceleratingVoltage))
	if m := in.Magnification; m != nil {
		add("Magnification", groupDigits(m.Value)+"×")
	}
	add("Camera length", q(in.CameraLength))
	add("Pixel size x", q(in.PixelSizeX))
	add("Pixel size y", q(in.PixelSizeY))
	add("Dwell time", q(in.DwellTime))
	add("Frame time", q(in.FrameTime))
	if st := in.Stage; st != nil {
		add("Stage x", q(st.X))
		add("Stage y", q(st.Y))
		add("Stage z", q(st.Z))
		add("Alpha tilt", q(st.AlphaTilt))
		add("Beta tilt", q(st.BetaTilt))
		add("Holder", st.Holder)
	}
	for _, d := range in.Detectors {
		v := d.Type
		if d.Dispersion != nil {
			v += ", dispersion " + q(d.Dispersion)
		}
		add("Detector "+d.Name, strings.Trim(v, ", "))
	}
	add("Software", strings.TrimSpace(in.Software+" "+in.ControlSoftware))
	for _, s := range r.Signals {
		dims := make([]string, len(s.Shape))
		for i, n := range s.Shape {
			dims[i] = strconv.Itoa(n)
		}
		add("Signal "+s.Title, s.Kind+" "+strings.Join(dims, "×"))
	}
	var creators []string
	for _, c := range r.Creators {
		creators = append(creators, c.Name)
	}
	add("Creators", strings.Join(creators, "; "))
	if a := r.Analysis; a != nil {
		if a.TotalCounts > 0 {
			add("X-ray counts", strconv.FormatUint(a.TotalCounts, 10))
		}
		if a.Frames > 0 {
			add("Frames", strconv.Itoa(a.Frames))
		}
		add("Analysis time", fmt.Sprintf("%.0f ms", a.DurationMS))
	}
	return rows
}

var figureOrder = map[string]int{"intensity-map": 0, "element-overlay": 1, "spectrum": 2, "image-preview": 3, "video": 4, "annotated-video": 5, "counts-plot": 6, "element-map": 7}

func (p *Portal) record(w http.ResponseWriter, r *http.Request) {
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		version, _ = strconv.Atoi(v)
	}
	id := r.PathValue("id")
	versions, err := p.cfg.Catalog.Versions(r.Context(), id, p.principals(r))
	if errors.Is(err, catalog.ErrNotFound) || err == nil && len(versions) == 0 {
		p.fail(w, r, http.StatusNotFound, "Not found", "There is no such record, or it is not shared with you.")
		return
	}
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	e := versions[0]
	for _, v := range versions {
		if v.Version == version {
			e = v
		}
	}
	shown := 0 // the newest: file links need no version
	if e != versions[0] {
		shown = e.Version
	}
	data := struct {
		page
		Entry       *catalog.Entry
		Figures     []figure
		Metadata    []metaRow
		SpectrumCSV string
		// Shown is the version on the page when it is not the newest.
		Shown    int
		Newest   int
		Versions []versionRow
		Params   []metaRow
		// ElementList are the identified elements, for the spectrum's markers.
		ElementList string
		// CanEdit shows the edit form (the newest version only).
		CanEdit  bool
		Keywords string
		// Tracks is a movie's tracks.csv, with the calibration to read it.
		Tracks               string
		PixelSize, FrameTime float64
		PixelUnits           string
	}{page: p.base(r, e.Title(), "search"), Entry: e, Metadata: metadataRows(e.Record), Shown: shown, Newest: versions[0].Version,
		ElementList: strings.Join(e.Elements(), ","), Keywords: strings.Join(e.Record.Keywords(), ", ")}
	if s := p.cfg.Sessions.Get(r); s != nil && shown == 0 {
		data.CanEdit = mayEdit(s.Identity, e)
	}
	for i, v := range versions {
		row := versionRow{Version: v.Version, Published: v.Published, RunID: v.RunID, Current: v == e}
		if pv := v.Record.Provenance; pv != nil {
			row.Analysis, row.Degraded = pv.Version, len(pv.Degraded) > 0
		}
		if i+1 < len(versions) {
			row.Changes = record.Diff(versions[i+1].Record, v.Record)
			if len(row.Changes) == 0 {
				row.Changes = []string{"same results"}
			}
		} else {
			row.Changes = []string{"first analysis"}
		}
		data.Versions = append(data.Versions, row)
	}
	if pv := e.Record.Provenance; pv != nil {
		for _, k := range slices.Sorted(maps.Keys(pv.Parameters)) {
			data.Params = append(data.Params, metaRow{Name: k, Value: fmt.Sprint(pv.Parameters[k])})
		}
	}
	for _, f := range e.Record.Files {
		u := fileURL(e.ID, f.Name)
		if shown > 0 {
			u += "?version=" + strconv.Itoa(shown)
		}
		if f.Name == "spectrum.csv" {
			data.SpectrumCSV = u
		}
		if f.Role == "tracks" {
			data.Tracks = u
			_, data.FrameTime = movieTiming(e.Record)
			data.PixelSize, data.PixelUnits = moviePixel(e.Record)
		}
		if _, ok := figureOrder[f.Role]; !ok {
			continue
		}
		kind := "image"
		if strings.HasPrefix(f.MediaType, "video/") {
			kind = "video"
		}
		caption := map[string]string{"intensity-map": "X-ray intensity (zero peak left out)", "element-overlay": "Element overlay", "spectrum": "Summed spectrum", "image-preview": "Image",
			"video": "Movie", "annotated-video": "Detected particles", "counts-plot": "Particles per frame"}[f.Role]
		if f.Role == "element-map" {
			caption = "Element map " + strings.TrimSuffix(strings.TrimPrefix(f.Name, "map-"), ".png")
		}
		fig := figure{URL: u, Caption: caption, Kind: kind, rank: figureOrder[f.Role]}
		if kind == "video" {
			fig.Frames, fig.FrameTime = movieTiming(e.Record)
		}
		data.Figures = append(data.Figures, fig)
	}
	slices.SortStableFunc(data.Figures, func(a, b figure) int { return a.rank - b.rank })
	p.render(w, http.StatusOK, "record", data)
}

// xrayLines serves the X-ray line table for the spectrum viewer: per
// element, [line, energy keV, weight within its family].
func xrayLines(w http.ResponseWriter, r *http.Request) {
	out := map[string][][3]any{}
	for _, l := range xray.Lines() {
		out[l.Element] = append(out[l.Element], [3]any{l.Name, l.Energy, l.Weight})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	json.NewEncoder(w).Encode(out)
}

// movieTiming is the frame count and frame time (s) of a record's image
// stack, zero where unknown.
func movieTiming(r *record.Record) (int, float64) {
	for _, sg := range r.Signals {
		if sg.Kind == "image_stack" && len(sg.Axes) > 0 {
			t := sg.Axes[0]
			if t.Units == "s" && t.Scale > 0 {
				return t.Size, t.Scale
			}
			return t.Size, 0
		}
	}
	return 0, 0
}

// moviePixel is the pixel size and unit of a record's image stack.
func moviePixel(r *record.Record) (float64, string) {
	for _, sg := range r.Signals {
		if sg.Kind == "image_stack" && len(sg.Axes) == 3 {
			if a := sg.Axes[2]; a.Scale > 0 && a.Units != "" {
				return a.Scale, a.Units
			}
		}
	}
	return 0, ""
}

// versionRow is one version in a record page's list.
type versionRow struct {
	Version   int
	Published time.Time
	RunID     string
	Analysis  string
	Degraded  bool
	Current   bool
	// Changes from the version before.
	Changes []string
}

func (p *Portal) thumb(w http.ResponseWriter, r *http.Request) {
	e, err := p.cfg.Catalog.Get(r.Context(), r.PathValue("id"), p.principals(r))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if p.cfg.Thumbnail != nil {
		// A small picture, the same as long as the record's newest
		// version is: revalidated by its run (ETag), never re-sent.
		path, ok, err := p.cfg.Thumbnail(r.Context(), e)
		if err != nil {
			p.log.Warn("thumbnail", "record", e.ID, "error", err)
		}
		if ok {
			fh, err := os.Open(path)
			if err == nil {
				defer fh.Close()
				fi, _ := fh.Stat()
				w.Header().Set("Content-Type", "image/jpeg")
				w.Header().Set("Cache-Control", "private, max-age=300")
				w.Header().Set("ETag", `"`+e.RunID+`"`)
				w.Header().Set("X-Content-Type-Options", "nosniff")
				http.ServeContent(w, r, "", fi.ModTime(), fh)
				return
			}
		}
	} else {
		for _, role := range []string{"intensity-map", "image-preview"} {
			for _, f := range e.Record.Files {
				if f.Role == role {
					http.Redirect(w, r, fileURL(e.ID, f.Name), http.StatusFound)
					return
				}
			}
		}
	}
	// No picture (a spectrum, an unreadable file): a neutral placeholder.
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "max-age=300")
	w.Write([]byte(placeholderSVG))
}

const placeholderSVG = `<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96" viewBox="0 0 96 96"><rect width="96" height="96" fill="#eef1f6"/><path d="M14 70 L34 44 L50 58 L64 36 L82 70 Z" fill="#c9ced8"/></svg>`

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

func runRows(runs []*flow.Run, legend []string) []runRow {
	var out []runRow
	now := time.Now()
	for _, r := range runs {
		end := now
		if r.Finished != nil {
			end = *r.Finished
		}
		total := max(end.Sub(r.Created), time.Microsecond)
		row := runRow{Run: r, Runtime: fmtDur(total), Warnings: runWarnings(r)}
		var active time.Duration
		for _, s := range r.Steps {
			cls := "s" + strconv.Itoa(min(max(slices.Index(legend, s.Name), 0), 4))
			row.Bars = append(row.Bars, barView{Class: cls, Width: 100 * float64(s.Active) / float64(total), Title: s.Name + " " + fmtDur(s.Active)})
			active += s.Active
		}
		gap := max(total-active, 0)
		row.Bars = append(row.Bars, barView{Class: "gap", Width: 100 * float64(gap) / float64(total), Title: "overhead " + fmtDur(gap)})
		row.Title = fmt.Sprintf("runtime %s, overhead %s", fmtDur(total), fmtDur(gap))
		out = append(out, row)
	}
	return out
}

func (p *Portal) runs(w http.ResponseWriter, r *http.Request) {
	id := p.cfg.Sessions.Get(r).Identity
	list, err := p.cfg.Runs.Runs(r.Context(), flow.ListQuery{State: r.URL.Query().Get("state"), Flow: r.URL.Query().Get("flow"), Limit: 100,
		Principals: id.Principals(), All: id.Has(auth.RoleAdmin)})
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	// The list has no steps; load them for the bars.
	full := make([]*flow.Run, 0, len(list))
	for _, run := range list {
		if fr, err := p.cfg.Runs.Run(r.Context(), run.ID); err == nil {
			full = append(full, fr)
		}
	}
	legend := []string{"transfer", "analyze", "publish", "notify"}
	data := struct {
		page
		Runs    []runRow
		Legend  []string
		Compute *computeView
	}{p.base(r, "Runs", "runs"), runRows(full, legend), legend, nil}
	if r.URL.Query().Get("fragment") != "" {
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

const loginCSRFCookie = "pf_login"

func (p *Portal) loginPage(w http.ResponseWriter, r *http.Request) {
	p.showLogin(w, r, http.StatusOK, "")
}

func (p *Portal) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	token := randomString()
	http.SetCookie(w, &http.Cookie{Name: loginCSRFCookie, Value: token, Path: "/login", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: p.cfg.Sessions.Secure, MaxAge: 3600})
	pg := p.base(r, "Sign in", "")
	pg.CSRF = token
	next := safeNext(r.FormValue("next"))
	oidcName := ""
	if p.cfg.OIDC != nil {
		oidcName = p.cfg.OIDC.Name
	}
	p.render(w, status, "login", struct {
		page
		Error, Next, OIDC string
	}{pg, msg, next, oidcName})
}

func (p *Portal) login(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCSRFCookie)
	if err != nil || c.Value == "" || c.Value != r.PostFormValue("csrf") {
		p.showLogin(w, r, http.StatusForbidden, errCSRF.Error())
		return
	}
	keys := throttleKeys(r, r.PostFormValue("user"))
	if d := p.throttle.wait(keys); d > 0 {
		secs := int(d.Seconds() + 0.999)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		p.log.Warn("sign-in refused: too many wrong passwords", "user", r.PostFormValue("user"), "remote", r.RemoteAddr, "wait_s", secs)
		p.showLogin(w, r, http.StatusTooManyRequests, fmt.Sprintf("Too many wrong passwords. Try again in %d s.", secs))
		return
	}
	id, err := p.cfg.Accounts.Check(r.Context(), r.PostFormValue("user"), r.PostFormValue("password"))
	if err != nil {
		p.throttle.failed(keys)
		p.log.Warn("sign-in failed", "user", r.PostFormValue("user"), "remote", r.RemoteAddr)
		p.showLogin(w, r, http.StatusUnauthorized, "Wrong user name or password.")
		return
	}
	p.throttle.succeeded(keys)
	if _, err := p.cfg.Sessions.Create(r.Context(), w, id); err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (p *Portal) logout(w http.ResponseWriter, r *http.Request) {
	s := p.cfg.Sessions.Get(r)
	if s != nil && !s.CSRFValid(r.PostFormValue("csrf")) {
		p.fail(w, r, http.StatusForbidden, "Forbidden", errCSRF.Error())
		return
	}
	p.cfg.Sessions.Delete(w, r)
	http.Redirect(w, r, "/search", http.StatusSeeOther)
}

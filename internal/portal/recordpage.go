package portal

// The record page: figures, metadata, the experiment, how it was made and
// its versions; thumbnails and the X-ray line table for the viewer.

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/record"
	"github.com/picoflow/picoflow/internal/xray"
)

type figure struct {
	URL, Caption, Kind string
	rank               int
	// Frames and FrameTime (s) of a movie, for frame stepping.
	Frames    int
	FrameTime float64
}

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
	add("Convergence semi-angle", q(in.ConvergenceAngle))
	add("Screen current", q(in.ScreenCurrent))
	if in.SpotIndex != nil {
		add("Spot size", strconv.FormatFloat(in.SpotIndex.Value, 'g', -1, 64))
	}
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
		if d.LiveTime != nil {
			v += ", live time " + q(d.LiveTime)
			if d.RealTime != nil && d.RealTime.Value > 0 {
				v += fmt.Sprintf(" of %s real (dead time %.1f %%)", q(d.RealTime), 100*(1-d.LiveTime.Value/d.RealTime.Value))
			}
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

// figureOrder ranks the figures a record page shows (the summed spectrum
// is the interactive viewer's; its PNG stays among the files).
var figureOrder = map[string]int{"intensity-map": 0, "element-overlay": 1, "image-preview": 3, "video": 4, "annotated-video": 5, "counts-plot": 6,
	"size-distribution": 7, "growth-curves": 8, "element-map": 9}

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
		// Derived are the records made from this one's data.
		Derived []catalog.Hit
		// CanEdit shows the edit form (the newest version only).
		CanEdit  bool
		Keywords string
		// Tracks is a movie's tracks.csv, with the calibration to read it.
		Tracks               string
		PixelSize, FrameTime float64
		PixelUnits           string
		// Events is its events.csv (merges, nucleations, dissolutions).
		Events string
	}{page: p.base(r, e.Title(), "search"), Entry: e, Metadata: metadataRows(e.Record), Shown: shown, Newest: versions[0].Version,
		ElementList: strings.Join(e.Elements(), ","), Keywords: strings.Join(e.Record.Keywords(), ", ")}
	if s := p.cfg.Sessions.Get(r); s != nil && shown == 0 {
		data.CanEdit = mayEdit(s.Identity, e)
	}
	if res, err := p.cfg.Catalog.Search(r.Context(), catalog.Query{Text: `"` + e.ID + `"`, Principals: p.principals(r), Limit: 50}); err == nil {
		for _, h := range res.Hits {
			if h.ID != e.ID {
				data.Derived = append(data.Derived, h)
			}
		}
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
	mv := movieAxes(e.Record)
	for _, f := range e.Record.Files {
		u := fileURL(e.ID, f.Name)
		if shown > 0 {
			u += "?version=" + strconv.Itoa(shown)
		}
		if f.Name == "spectrum.csv" {
			data.SpectrumCSV = u
		}
		if f.Role == "events" {
			data.Events = u
		}
		if f.Role == "tracks" {
			data.Tracks = u
			data.FrameTime, data.PixelSize, data.PixelUnits = mv.frameTime, mv.pixelSize, mv.pixelUnits
		}
		if _, ok := figureOrder[f.Role]; !ok {
			continue
		}
		kind := "image"
		if strings.HasPrefix(f.MediaType, "video/") {
			kind = "video"
		}
		caption := map[string]string{"intensity-map": "X-ray intensity (zero peak left out)", "element-overlay": "Element overlay", "image-preview": "Image",
			"video": "Movie", "annotated-video": "Detected particles", "counts-plot": "Particles per frame",
			"size-distribution": "Size distribution over time", "growth-curves": "Growth of the largest particles"}[f.Role]
		if f.Role == "element-map" {
			caption = "Element map " + strings.TrimSuffix(strings.TrimPrefix(f.Name, "map-"), ".png")
		}
		fig := figure{URL: u, Caption: caption, Kind: kind, rank: figureOrder[f.Role]}
		if kind == "video" {
			fig.Frames, fig.FrameTime = mv.frames, mv.frameTime
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

// movie is what a record's image stack says of its frames and pixels,
// zero where unknown.
type movie struct {
	frames               int
	frameTime, pixelSize float64 // s, pixelUnits
	pixelUnits           string
}

func movieAxes(r *record.Record) movie {
	for _, sg := range r.Signals {
		if sg.Kind != "image_stack" || len(sg.Axes) == 0 {
			continue
		}
		var m movie
		t := sg.Axes[0]
		m.frames = t.Size
		if t.Units == "s" && t.Scale > 0 {
			m.frameTime = t.Scale
		}
		if len(sg.Axes) == 3 {
			if a := sg.Axes[2]; a.Scale > 0 && a.Units != "" {
				m.pixelSize, m.pixelUnits = a.Scale, a.Units
			}
		}
		return m
	}
	return movie{}
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

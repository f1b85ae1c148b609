package record

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Diff says, one line each, what changed from one version of a record to
// the next: analysis version and parameters, outside parts, elements found,
// composition, counts, movie detections, figures. Nothing means the
// results are the same.
func Diff(old, new *Record) []string {
	var out []string
	if len(new.Edits) > len(old.Edits) {
		ed := new.Edits[len(new.Edits)-1]
		out = append(out, "edited by "+ed.By)
	}
	if a, b := old.UserDescription(), new.UserDescription(); a != b {
		out = append(out, "description changed")
	}
	if d := setDiff(old.Keywords(), new.Keywords()); d != "" {
		out = append(out, "keywords: "+d)
	}
	for _, f := range []struct{ name, a, b string }{{"sample", old.Subject("sample"), new.Subject("sample")}, {"licence", old.License(), new.License()},
		{"operator", old.Operator(), new.Operator()}} {
		if f.a != f.b {
			out = append(out, fmt.Sprintf("%s %s → %s", f.name, or(f.a, "none"), or(f.b, "none")))
		}
	}
	po, pn := old.Provenance, new.Provenance
	if po == nil {
		po = &Provenance{}
	}
	if pn == nil {
		pn = &Provenance{}
	}
	if po.Version != pn.Version {
		out = append(out, fmt.Sprintf("analysis version %s → %s", or(po.Version, "unknown"), or(pn.Version, "unknown")))
	}
	var params []string
	for _, k := range slices.Sorted(maps.Keys(union(po.Parameters, pn.Parameters))) {
		a, b := po.Parameters[k], pn.Parameters[k]
		if fmt.Sprint(a) != fmt.Sprint(b) {
			params = append(params, fmt.Sprintf("%s %s → %s", k, show(a), show(b)))
		}
	}
	if len(params) > 0 {
		out = append(out, "parameters: "+strings.Join(params, ", "))
	}
	if d := setDiff(po.Degraded, pn.Degraded); d != "" {
		out = append(out, "missing parts: "+d)
	}
	ao, an := old.Analysis, new.Analysis
	if ao == nil {
		ao = &Analysis{}
	}
	if an == nil {
		an = &Analysis{}
	}
	if d := setDiff(ao.Elements, an.Elements); d != "" {
		out = append(out, "elements: "+d)
	}
	if ao.TotalCounts != an.TotalCounts {
		out = append(out, fmt.Sprintf("X-ray counts %d → %d", ao.TotalCounts, an.TotalCounts))
	}
	if ao.Selection != an.Selection {
		out = append(out, fmt.Sprintf("data used: %s → %s", or(ao.Selection, "all"), or(an.Selection, "all")))
	}
	out = append(out, compositionDiff(ao.Composition, an.Composition)...)
	for _, k := range slices.Sorted(maps.Keys(union(ao.Metrics, an.Metrics))) {
		a, okA := ao.Metrics[k]
		b, okB := an.Metrics[k]
		if okA != okB || math.Abs(a-b) > 1e-9*math.Max(math.Abs(a), 1) {
			out = append(out, fmt.Sprintf("%s %s → %s", strings.ReplaceAll(k, "_", " "), num(a, okA), num(b, okB)))
		}
	}
	if ao.Detector != an.Detector {
		out = append(out, fmt.Sprintf("particle detector %s → %s", or(ao.Detector, "none"), or(an.Detector, "none")))
	}
	var fo, fn []string
	for _, f := range old.Files {
		fo = append(fo, f.Name)
	}
	for _, f := range new.Files {
		fn = append(fn, f.Name)
	}
	if d := setDiff(fo, fn); d != "" {
		out = append(out, "files: "+d)
	}
	return out
}

func compositionDiff(a, b *Composition) []string {
	wt := func(c *Composition) map[string]float64 {
		m := map[string]float64{}
		if c != nil {
			for _, e := range c.Elements {
				m[e.Element] = e.WeightPercent
			}
		}
		return m
	}
	wa, wb := wt(a), wt(b)
	var parts []string
	for _, el := range slices.Sorted(maps.Keys(union(wa, wb))) {
		x, okX := wa[el]
		y, okY := wb[el]
		if okX != okY || math.Abs(x-y) >= 0.05 {
			parts = append(parts, fmt.Sprintf("%s %s → %s", el, pct(x, okX), pct(y, okY)))
		}
	}
	if len(parts) == 0 {
		return nil
	}
	return []string{"composition (wt%): " + strings.Join(parts, ", ")}
}

// setDiff lists what a set gained (+) and lost (−).
func setDiff(a, b []string) string {
	var parts []string
	for _, x := range b {
		if !slices.Contains(a, x) {
			parts = append(parts, "+"+x)
		}
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			parts = append(parts, "−"+x)
		}
	}
	return strings.Join(parts, " ")
}

func union[V any](a, b map[string]V) map[string]V {
	m := map[string]V{}
	maps.Copy(m, a)
	maps.Copy(m, b)
	return m
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func show(v any) string {
	if v == nil {
		return "default"
	}
	return fmt.Sprint(v)
}

func num(v float64, ok bool) string {
	if !ok {
		return "none"
	}
	return fmt.Sprintf("%.4g", v)
}

func pct(v float64, ok bool) string {
	if !ok {
		return "none"
	}
	return fmt.Sprintf("%.1f", v)
}

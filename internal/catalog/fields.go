package catalog

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ParseQuery reads a search as people type it: free text with field terms
// that filter, e.g. `gold element:Au kind:hyperspectral instrument:Titan
// date:2026-11 made-before:v0.2.0`. Field names: element, kind, instrument,
// proposal, sample, operator and keyword (as phrases of the text), date (a year, year-month or day), from and to (dates), made-before (an
// analysis version), voltage and magnification with a comparison and a unit
// (voltage:>=200kV, magnification:<100kx); a bare year is the date. A word
// with an unknown field stays free text. The
// principals, sort and paging are the caller's to set.
func ParseQuery(text string) (Query, error) {
	var q Query
	var free []string
	for _, w := range strings.Fields(text) {
		field, value, ok := strings.Cut(w, ":")
		if !ok || value == "" || strings.HasPrefix(w, `"`) {
			free = append(free, w)
			continue
		}
		switch strings.ToLower(field) {
		case "element", "el":
			if sym, ok := ElementSymbol(value); ok {
				value = sym // element:gold, element:au
			}
			q.Elements = append(q.Elements, value)
		case "voltage", "kv", "hv", "magnification", "mag":
			rg, err := parseRange(strings.ToLower(field), value)
			if err != nil {
				return q, fmt.Errorf("%w: %s: %w", ErrInvalid, w, err)
			}
			q.Ranges = append(q.Ranges, rg)
		case "kind", "type":
			q.Kinds = append(q.Kinds, value)
		case "instrument":
			q.Instruments = append(q.Instruments, value)
		case "made-before", "version<":
			q.MadeBefore = value
		case "proposal", "sample", "operator", "keyword":
			// Indexed as text: the value as a phrase (proposal:"GUP 81234"
			// keeps its quotes).
			free = append(free, `"`+strings.Trim(value, `"`)+`"`)
		case "date", "from", "to":
			from, to, err := dateRange(value)
			if err != nil {
				return q, fmt.Errorf("%w: %s: %w", ErrInvalid, w, err)
			}
			switch strings.ToLower(field) {
			case "date":
				q.From, q.To = from, to
			case "from":
				q.From = from
			case "to":
				q.To = to
			}
		default:
			free = append(free, w)
		}
	}
	// A bare year is when the data was taken (2017), unless a date is given.
	if q.From.IsZero() && q.To.IsZero() {
		var rest []string
		for _, w := range free {
			if y, err := strconv.Atoi(w); err == nil && len(w) == 4 && y >= 1980 && y <= 2100 && q.From.IsZero() {
				q.From, q.To = time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(y+1, 1, 1, 0, 0, 0, 0, time.UTC)
				continue
			}
			rest = append(rest, w)
		}
		free = rest
	}
	q.Text = strings.Join(free, " ")
	return q, nil
}

// parseRange reads a numeric field term's value: an optional comparison
// (< <= > >= =, default =), a number and a unit (voltage: V, kV, MV, default
// kV; magnification: x, kx, Mx).
func parseRange(field, v string) (Range, error) {
	rg := Range{Op: "="}
	for _, op := range []string{"<=", ">=", "<", ">", "="} {
		if strings.HasPrefix(v, op) {
			rg.Op, v = op, v[len(op):]
			break
		}
	}
	num := strings.TrimRightFunc(v, func(r rune) bool { return unicode.IsLetter(r) || r == '×' })
	unit := strings.ToLower(strings.TrimSpace(v[len(num):]))
	x, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil {
		return rg, fmt.Errorf("want a number, e.g. %s:>=200kV or magnification:<100kx", field)
	}
	var scale map[string]float64
	switch field {
	case "voltage", "kv", "hv":
		rg.Field, scale = FieldVoltage, map[string]float64{"": 1, "kv": 1, "v": 1e-3, "mv": 1e3}
	default:
		rg.Field, scale = FieldMagnification, map[string]float64{"": 1, "x": 1, "×": 1, "kx": 1e3, "k": 1e3, "mx": 1e6, "m": 1e6}
	}
	f, ok := scale[unit]
	if !ok {
		return rg, fmt.Errorf("unknown unit %q", unit)
	}
	rg.Value = x * f
	return rg, nil
}

// dateRange is the interval a year, month or day covers, in UTC.
func dateRange(v string) (from, to time.Time, err error) {
	for _, f := range []struct {
		layout string
		next   func(time.Time) time.Time
	}{
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
	} {
		if t, err := time.Parse(f.layout, v); err == nil {
			return t, f.next(t), nil
		}
	}
	return from, to, fmt.Errorf("want a date like 2026, 2026-11 or 2026-11-27")
}

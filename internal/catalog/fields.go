package catalog

import (
	"fmt"
	"strings"
	"time"
)

// ParseQuery reads a search as people type it: free text with field terms
// that filter, e.g. `gold element:Au kind:hyperspectral instrument:Titan
// date:2026-11 made-before:v0.2.0`. Field names: element, kind, instrument,
// date (a year, year-month or day), from and to (dates), made-before (an
// analysis version). A word with an unknown field stays free text. The
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
			q.Elements = append(q.Elements, value)
		case "kind", "type":
			q.Kinds = append(q.Kinds, value)
		case "instrument":
			q.Instruments = append(q.Instruments, value)
		case "made-before", "version<":
			q.MadeBefore = value
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
	q.Text = strings.Join(free, " ")
	return q, nil
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

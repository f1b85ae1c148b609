package portal

import (
	"net/url"
	"testing"

	"github.com/picoflow/picoflow/internal/catalog"
)

// TestHistogram: a continuous time axis (empty months kept), years when
// the data spans more than four years.
func TestHistogram(t *testing.T) {
	bars := histogram(url.Values{}, catalog.Query{}, []catalog.FacetValue{{Value: "2026-01", Count: 3}, {Value: "2026-04", Count: 1}})
	var labels []string
	var counts []int
	for _, b := range bars {
		labels, counts = append(labels, b.Label), append(counts, b.Count)
	}
	if len(bars) != 4 || labels[1] != "2026-02" || counts[0] != 3 || counts[1] != 0 || counts[3] != 1 || bars[1].Height != 0 || bars[0].Height != 100 {
		t.Fatalf("months: %v %v", labels, counts)
	}
	if u, _ := url.Parse(bars[1].URL); u.Query().Get("from") != "2026-02-01" || u.Query().Get("to") != "2026-02-28" {
		t.Errorf("February's link: %s", bars[1].URL)
	}
	years := histogram(url.Values{}, catalog.Query{}, []catalog.FacetValue{{Value: "2017-03", Count: 2}, {Value: "2017-09", Count: 1}, {Value: "2026-11", Count: 5}})
	if len(years) != 10 || years[0].Label != "2017" || years[0].Count != 3 || years[9].Count != 5 {
		t.Fatalf("years: %+v", years)
	}
}

package record

import (
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	old := &Record{
		Provenance: &Provenance{Version: "v0.1.0", Parameters: map[string]any{"min_significance": 5.0, "fwhm_mn_kev": 0.13}, Degraded: []string{"ffmpeg: not installed, no video"}},
		Analysis: &Analysis{Elements: []string{"C", "Cu"}, TotalCounts: 1000, Metrics: map[string]float64{"tracks": 40},
			Composition: &Composition{Elements: []ElementPercent{{Element: "Cu", WeightPercent: 60}, {Element: "C", WeightPercent: 40}}}},
		Files: []File{{Name: "map-Cu.png"}, {Name: "spectrum.png"}},
	}
	new := &Record{
		Provenance: &Provenance{Version: "v0.2.0", Parameters: map[string]any{"min_significance": 7.0, "fwhm_mn_kev": 0.13}},
		Analysis: &Analysis{Elements: []string{"C", "Ti"}, TotalCounts: 1000, Metrics: map[string]float64{"tracks": 38},
			Composition: &Composition{Elements: []ElementPercent{{Element: "Ti", WeightPercent: 55}, {Element: "C", WeightPercent: 40.02}}}},
		Files: []File{{Name: "map-Ti.png"}, {Name: "spectrum.png"}},
	}
	want := []string{
		"analysis version v0.1.0 → v0.2.0",
		"parameters: min_significance 5 → 7",
		"missing parts: −ffmpeg: not installed, no video",
		"elements: +Ti −Cu",
		"composition (wt%): Cu 60.0 → none, Ti none → 55.0",
		"tracks 40 → 38",
		"files: +map-Ti.png −map-Cu.png",
	}
	if got := Diff(old, new); !slices.Equal(got, want) {
		t.Errorf("diff:\n%q\nwant\n%q", got, want)
	}
	if got := Diff(new, new); len(got) != 0 {
		t.Errorf("a record differs from itself: %q", got)
	}
}

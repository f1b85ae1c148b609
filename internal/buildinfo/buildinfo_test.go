package buildinfo

import (
	"runtime/debug"
	"sort"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261127172404-6517a4226efc"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "6517a4226efc396d1c4af12f0bf1857557d26bb0"}, {Key: "vcs.modified", Value: "true"}}}
	got := FromBuildInfo(bi)
	if got.Version != "v0.0.0-20261127172404-6517a4226efc" || got.Revision != "6517a4226efc396d1c4af12f0bf1857557d26bb0+dirty" || got.Go != "go1.26.8" {
		t.Errorf("%+v", got)
	}
	if got := FromBuildInfo(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}); got.Version != "devel" || got.Revision != "" {
		t.Errorf("devel build: %+v", got)
	}
}

// TestSortKey: keys sort as semantic versions do, pseudo-versions by time
// and before the release they lead to.
func TestSortKey(t *testing.T) {
	ordered := []string{
		"v0.0.0-20251201000000-aaaaaaaaaaaa",
		"v0.0.0-20261127172404-6517a4226efc",
		"v0.1.0-rc.1",
		"v0.1.0",
		"v0.2.0",
		"v0.10.0",
		"v1.0.0+meta",
	}
	keys := make([]string, len(ordered))
	for i, v := range ordered {
		keys[i] = SortKey(v)
		if keys[i] == "" {
			t.Fatalf("%s: no key", v)
		}
	}
	if !sort.StringsAreSorted(keys) {
		t.Errorf("keys do not sort as versions: %q", keys)
	}
	for _, v := range []string{"devel", "", "vX", "1.2.3.4"} {
		if SortKey(v) != "" {
			t.Errorf("%q has a key", v)
		}
	}
}

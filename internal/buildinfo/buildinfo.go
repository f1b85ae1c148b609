// Package buildinfo says which build of picoflow is running: the module
// version Go stamps into the binary (a tag, or a pseudo-version made from the
// commit time and revision) and the VCS revision. Records carry both, so a
// result can be traced to the code that made it, and versions compare: see
// SortKey.
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
)

// Info is one build's identity.
type Info struct {
	// Version is the module version ("v0.3.1", "v0.0.0-20261127172404-
	// 6517a4226efc"), or "devel" for a build without version control
	// information (go test, -buildvcs=false).
	Version string `json:"version"`
	// Revision is the VCS commit, with "+dirty" when the work tree had
	// changes; empty when unknown.
	Revision string `json:"revision,omitempty"`
	// Go is the toolchain that built it.
	Go string `json:"go,omitempty"`
}

var (
	once    sync.Once
	current Info
)

// Current is the running binary's build.
func Current() Info {
	once.Do(func() {
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			current = Info{Version: "devel"}
			return
		}
		current = FromBuildInfo(bi)
	})
	return current
}

// FromBuildInfo reads a build's identity from Go's build information.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Version: bi.Main.Version, Go: bi.GoVersion}
	if in.Version == "" || in.Version == "(devel)" {
		in.Version = "devel"
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && in.Revision != "" {
		in.Revision += "+dirty"
	}
	return in
}

// SortKey maps a version to a string that sorts as the versions do
// (semantic versioning: a pre-release, and so a pseudo-version, sorts before
// its release; pseudo-versions by their commit time). Versions that are not
// semantic ("devel") get "", which sorts first and matches no range.
func SortKey(v string) string {
	v = strings.TrimPrefix(v, "v")
	if i := strings.IndexByte(v, '+'); i >= 0 {
		v = v[:i] // build metadata does not order
	}
	core, pre, hasPre := strings.Cut(v, "-")
	parts := strings.Split(core, ".")
	if len(parts) == 0 || len(parts) > 3 {
		return ""
	}
	var n [3]uint64
	for i, p := range parts {
		x, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return ""
		}
		n[i] = x
	}
	key := fmt.Sprintf("%010d.%010d.%010d", n[0], n[1], n[2])
	if hasPre {
		// '-' sorts before '~': a pre-release comes before its release.
		return key + "-" + pre
	}
	return key + "~"
}

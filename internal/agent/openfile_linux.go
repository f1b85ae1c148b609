package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// openForWrite reports whether any process has path open for writing, by
// reading /proc (only processes this user may inspect are seen).
func openForWrite(path string) bool {
	want, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	// This process is included: its own handles are read-only, and a writer
	// in the same process (the demo's simulator) must count.
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		fdDir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || target != want {
				continue
			}
			info, err := os.ReadFile(filepath.Join("/proc", p.Name(), "fdinfo", fd.Name()))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(info), "\n") {
				if v, ok := strings.CutPrefix(line, "flags:"); ok {
					flags, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
					if err == nil && flags&int64(os.O_WRONLY|os.O_RDWR) != 0 {
						return true
					}
				}
			}
		}
	}
	return false
}

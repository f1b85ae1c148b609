//go:build unix

package sandbox

import (
	"fmt"
	"os"
	"syscall"
)

// limitMemory caps the address space at n bytes above what the process has
// already mapped: the Go runtime reserves a large virtual range at start-up
// that it never touches, and that must not count against the limit.
func limitMemory(n uint64) error {
	base := uint64(0)
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		var pages uint64
		if _, err := fmt.Sscan(string(b), &pages); err == nil {
			base = pages * uint64(os.Getpagesize())
		}
	}
	lim := base + n
	return syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: lim, Max: lim})
}

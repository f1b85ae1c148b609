//go:build !linux

package linkem

import "time"

// sleep waits d (with the Go timers' precision here).
func sleep(d time.Duration) { time.Sleep(d) }

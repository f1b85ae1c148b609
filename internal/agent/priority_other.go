//go:build !linux && !darwin && !freebsd && !windows

package agent

// lowerPriority is not available here.
func lowerPriority() error { return nil }

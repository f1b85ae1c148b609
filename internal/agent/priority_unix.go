//go:build darwin || freebsd

package agent

import "golang.org/x/sys/unix"

// lowerPriority runs the agent below the microscope's software: nice 10
// (these systems lower a niced process's I/O with its CPU).
func lowerPriority() error { return unix.Setpriority(unix.PRIO_PROCESS, 0, 10) }

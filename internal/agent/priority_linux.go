package agent

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// lowerPriority runs the agent below the microscope's software: nice 10
// and the best-effort I/O class at its lowest level. Linux keeps both per
// thread, so every thread of the process is set (threads made later
// inherit them from the thread that makes them).
func lowerPriority() error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	const whoProcess, classBestEffort, level = 1, 2, 7
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, 10); err != nil {
			return err
		}
		if _, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, whoProcess, uintptr(tid), classBestEffort<<13|level); errno != 0 {
			return errno
		}
	}
	return nil
}

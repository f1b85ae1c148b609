package agent

import "golang.org/x/sys/windows"

// lowerPriority runs the agent below the microscope's software: the
// below-normal priority class (CPU), and background mode, which also
// lowers its disk and memory priority.
func lowerPriority() error {
	h := windows.CurrentProcess()
	if err := windows.SetPriorityClass(h, windows.BELOW_NORMAL_PRIORITY_CLASS); err != nil {
		return err
	}
	return windows.SetPriorityClass(h, windows.PROCESS_MODE_BACKGROUND_BEGIN)
}

package sandbox

import (
	"os/exec"
	"syscall"
)

// dieWithParent kills the worker if the parent dies (a killed server must
// not leave analyses running).
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

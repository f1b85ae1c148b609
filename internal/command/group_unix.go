//go:build unix

package command

import (
	"os/exec"
	"syscall"
)

// ownGroup runs cmd in a process group of its own and makes cancellation
// kill the whole group (a shell's children too).
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

//go:build !linux

package sandbox

import "os/exec"

// dieWithParent has no portable equivalent outside Linux; a worker there
// finishes its one analysis and exits when its output pipe closes.
func dieWithParent(*exec.Cmd) {}

//go:build !unix

package command

import "os/exec"

// ownGroup: cancellation kills the command's process only.
func ownGroup(*exec.Cmd) {}

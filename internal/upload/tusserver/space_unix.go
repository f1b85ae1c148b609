//go:build linux || darwin || freebsd

package tusserver

import "syscall"

// FreeSpace is the space an unprivileged process may still write on dir's
// file system, in bytes, or -1 when unknown.
func FreeSpace(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

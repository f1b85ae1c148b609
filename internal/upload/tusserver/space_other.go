//go:build !(linux || darwin || freebsd)

package tusserver

// FreeSpace is unknown here (-1).
func FreeSpace(string) int64 { return -1 }

package tusserver

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrDiskFull means an upload does not fit on the server's disk.
var ErrDiskFull = errors.New("disk full")

// checkSpace refuses an upload of size bytes that would leave less than
// minFree bytes free on dir's file system.
func checkSpace(dir string, size, minFree int64) error {
	free := FreeSpace(dir)
	if free < 0 {
		return nil
	}
	if size+minFree > free {
		return fmt.Errorf("%w: the upload needs %d bytes and the server keeps %d free, but only %d are free", ErrDiskFull, size, minFree, free)
	}
	return nil
}

// isNoSpace reports whether err is the file system running out of space
// (or quota).
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

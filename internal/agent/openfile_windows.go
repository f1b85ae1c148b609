package agent

import "syscall"

// errSharingViolation is ERROR_SHARING_VIOLATION.
const errSharingViolation = syscall.Errno(32)

// openForWrite reports whether another process has path open for writing
// (Velox, or a copy in progress): an open that lets others read but not
// write is refused while a writer holds the file.
func openForWrite(path string) bool {
	p, err := syscall.UTF16PtrFromString(path)
	if err != nil {
		return false
	}
	h, err := syscall.CreateFile(p, syscall.GENERIC_READ, syscall.FILE_SHARE_READ, nil, syscall.OPEN_EXISTING, syscall.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		return err == errSharingViolation
	}
	syscall.CloseHandle(h)
	return false
}

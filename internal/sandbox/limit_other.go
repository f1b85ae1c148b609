//go:build !unix

package sandbox

// limitMemory is a no-op where the OS has no address-space limit; the
// child's crash is still contained.
func limitMemory(uint64) error { return nil }

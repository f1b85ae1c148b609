// Package emd reads Electron Microscopy Dataset files: ThermoFisher Velox EMD
// (images, frame stacks, spectra and spectrum images decoded from the
// SpectrumStream event stream) and Berkeley/NCEM EMD v0.2 (time series of
// images, (T, H, W) with a first axis named time or frame, read as frame
// stacks).
//
// The package is pure Go (no cgo) so that it builds for the instrument PC
// and the facility alike. Every error wraps one of ErrFormat, ErrNotFound,
// ErrTooLarge or ErrUnsupported, so callers can tell bad input from a bug.
package emd

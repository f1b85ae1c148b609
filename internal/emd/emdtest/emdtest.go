// Package emdtest gives tests access to the real EMD files in ../shared/data,
// to the HyperSpy reference reader (Debian's python3-hyperspy) and to h5py,
// which writes the EMD files the real ones do not cover.
package emdtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// DataDir returns the directory of real EMD files (../shared/data/emd beside
// the repository, or $PICOFLOW_DATA). A missing directory fails the test:
// the real files are part of the test suite.
func DataDir(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv("PICOFLOW_DATA"); d != "" {
		return filepath.Join(d, "emd")
	}
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, "..", "shared", "data", "emd")
			if _, err := os.Stat(d); err != nil {
				tb.Fatalf("real EMD test data not found at %s (set PICOFLOW_DATA): %v", d, err)
			}
			return d
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("repository root (go.mod) not found")
		}
		dir = parent
	}
}

// File returns the path of a real test file, e.g. "velox/example_fei_emd_si.emd".
func File(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join(DataDir(tb), name)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("real test file: %v", err)
	}
	return p
}

// Python is the interpreter that has Debian's python3-hyperspy.
const Python = "/usr/bin/python3"

// HyperSpy runs a Python script with HyperSpy available and returns its
// standard output. A missing HyperSpy fails the test (.ci/run installs it).
func HyperSpy(tb testing.TB, script string, args ...string) []byte {
	tb.Helper()
	return runPython(tb, "hyperspy reference", script, args)
}

// H5py runs a Python script that uses h5py (which python3-hyperspy
// brings) to write or read an HDF5 file, and returns its standard output.
func H5py(tb testing.TB, script string, args ...string) []byte {
	tb.Helper()
	return runPython(tb, "h5py", script, args)
}

// BerkeleySeries writes at path a Berkeley (NCEM) EMD v0.2 file holding
// one time series, as ncempy and h5py write one: makeData is Python that
// sets data, a (T, H, W) array; its axes are time in s (step
// secondsPerFrame) and y, x in nm (step nmPerPixel).
func BerkeleySeries(tb testing.TB, path, makeData string, secondsPerFrame, nmPerPixel float64) {
	tb.Helper()
	script := `
import sys, h5py, numpy as np
` + makeData + `
steps = (float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[3]))
with h5py.File(sys.argv[1], "w") as f:
    f.attrs["version_major"] = 0
    f.attrs["version_minor"] = 2
    g = f.create_group("data").create_group("series")
    g.attrs["emd_group_type"] = 1
    g.create_dataset("data", data=data)
    for i, (n, u) in enumerate([("time", "s"), ("y", "nm"), ("x", "nm")]):
        d = g.create_dataset("dim%d" % (i + 1), data=np.arange(data.shape[i]) * steps[i])
        d.attrs["name"], d.attrs["units"] = np.bytes_(n), np.bytes_(u)
`
	H5py(tb, script, path, strconv.FormatFloat(secondsPerFrame, 'g', -1, 64), strconv.FormatFloat(nmPerPixel, 'g', -1, 64))
}

// runPython runs script with args and returns its standard output; a
// failure fails the test with the script's error output.
func runPython(tb testing.TB, what, script string, args []string) []byte {
	tb.Helper()
	cmd := exec.Command(Python, append([]string{"-c", script}, args...)...)
	cmd.Env = append(os.Environ(), "MPLBACKEND=Agg", "PYTHONWARNINGS=ignore")
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		tb.Fatalf("%s (%s): %v\n%s", what, Python, err, msg)
	}
	return out
}

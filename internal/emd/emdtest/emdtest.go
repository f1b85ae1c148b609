// Package emdtest gives tests access to the real EMD files in ../shared/data
// and to the HyperSpy reference reader (Debian's python3-hyperspy).
package emdtest

import (
	"os"
	"os/exec"
	"path/filepath"
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
	cmd := exec.Command(Python, append([]string{"-c", script}, args...)...)
	cmd.Env = append(os.Environ(), "MPLBACKEND=Agg", "PYTHONWARNINGS=ignore")
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		tb.Fatalf("hyperspy reference (%s): %v\n%s", Python, err, msg)
	}
	return out
}

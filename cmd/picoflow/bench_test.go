package main

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"
)

// TestBenchTransfer runs `picoflow bench transfer` on a small file: every
// measurement, the bare-loopback ceiling included, is printed with a rate.
func TestBenchTransfer(t *testing.T) {
	t.Parallel()
	cmd := benchTransferCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--size-mb", "8", "--rounds", "2"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, label := range []string{`cp`, `cp \+ fdatasync`, `tus upload over loopback \(durable\)`, `upload \+ SHA-256 check at the server`, `SHA-256 at the source \(once, before\)`, `ceiling: bare loopback TCP`} {
		m := regexp.MustCompile(`(?m)^  ` + label + `\s+(\d+) MB/s`).FindStringSubmatch(out.String())
		if m == nil {
			t.Errorf("no %q line in:\n%s", label, out.String())
			continue
		}
		if v, _ := strconv.Atoi(m[1]); v <= 0 {
			t.Errorf("%s: %s MB/s", label, m[1])
		}
	}
}

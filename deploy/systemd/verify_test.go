// Package systemd holds the systemd units of picoflow's services; its test
// checks them with systemd-analyze.
package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnitsVerify runs systemd-analyze verify on each unit, with the
// binaries it names present (a stand-in script at the same path would need
// root, so the ExecStart paths are rewritten to a temporary copy).
func TestUnitsVerify(t *testing.T) {
	units, _ := filepath.Glob("*.service")
	if len(units) != 3 {
		t.Fatalf("units: %v", units)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	for _, b := range []string{"picoflow", "picoflow-agent"} {
		os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\n"), 0o755)
	}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "/usr/local/bin/", bin+"/")
		p := filepath.Join(dir, u)
		os.WriteFile(p, []byte(text), 0o644)
		out, err := exec.Command("systemd-analyze", "verify", "--man=no", p).CombinedOutput()
		// Users and groups that do not exist on this machine are not the
		// unit's fault.
		var problems []string
		for _, l := range strings.Split(string(out), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "user") && !strings.Contains(l, "group") && !strings.Contains(l, "EnvironmentFile") {
				problems = append(problems, l)
			}
		}
		if len(problems) > 0 {
			t.Errorf("%s: %v\n%s", u, err, strings.Join(problems, "\n"))
		}
	}
}

package slurm_test

import (
	"os/exec"
	"testing"

	"github.com/picoflow/picoflow/internal/compute/computetest"
	"github.com/picoflow/picoflow/internal/compute/slurm"
)

// TestSuite runs the provider suite against a real Slurm (Debian's
// slurm-wlm; .ci/run starts a single-node cluster with
// scripts/start-slurm.sh).
func TestSuite(t *testing.T) {
	if out, err := exec.Command("sinfo", "-h", "-o", "%T").CombinedOutput(); err != nil || len(out) == 0 {
		t.Fatalf("no Slurm cluster (run scripts/start-slurm.sh as root): %v %s", err, out)
	}
	computetest.RunSuite(t, &slurm.Provider{Partition: "debug", Time: "00:10:00"}, t.TempDir())
}

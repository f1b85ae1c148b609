package pbs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/picoflow/picoflow/internal/compute/computetest"
	"github.com/picoflow/picoflow/internal/compute/pbs"
)

// TestSuite runs the provider suite against qsub/qstat/qdel. PBS Pro is not
// packaged for Debian, so the commands are small shell stand-ins
// (testdata/bin) that keep PBS's interface: the script on qsub's standard
// input, "job_state = R" from qstat -f, "Unknown Job Id" for finished jobs.
func TestSuite(t *testing.T) {
	bin, _ := filepath.Abs("testdata/bin")
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("PBS_SHIM_DIR", t.TempDir())
	computetest.RunSuite(t, &pbs.Provider{Queue: "debug", Walltime: "00:10:00"}, t.TempDir())
}

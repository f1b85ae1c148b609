package local_test

import (
	"testing"

	"github.com/picoflow/picoflow/internal/compute/computetest"
	"github.com/picoflow/picoflow/internal/compute/local"
)

func TestSuite(t *testing.T) {
	t.Parallel()
	computetest.RunSuite(t, local.New(), t.TempDir())
}

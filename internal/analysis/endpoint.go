package analysis

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/picoflow/picoflow/internal/compute"
	"github.com/picoflow/picoflow/internal/sandbox"
)

// EndpointRun is the compute.RunFunc of an analysis endpoint: it runs the
// task's analysis in a worker process with the options the server sent.
func EndpointRun(reg *sandbox.Registry, lim sandbox.Limits) compute.RunFunc {
	return func(ctx context.Context, t *compute.Task, input, outDir string) (any, error) {
		if t.Kind != "analyze" {
			return nil, fmt.Errorf("task kind %q is not supported here", t.Kind)
		}
		var opt Options
		if len(t.Input.Options) > 0 {
			if err := json.Unmarshal(t.Input.Options, &opt); err != nil {
				return nil, fmt.Errorf("task options: %w", err)
			}
		}
		opt.SHA256 = t.Input.SHA256 // verified by the endpoint before the run
		return RunIsolated(ctx, reg, input, outDir, opt, lim)
	}
}

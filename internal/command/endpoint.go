package command

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/picoflow/picoflow/internal/compute"
)

// EndpointRun runs tasks of kind "command" with the endpoint's own
// commands, each under memory bytes of address space (0: no cap), and
// hands every other task to next.
func EndpointRun(set Set, memory uint64, next compute.RunFunc) compute.RunFunc {
	return func(ctx context.Context, t *compute.Task, input, outDir string) (any, error) {
		if t.Kind != "command" {
			return next(ctx, t, input, outDir)
		}
		var o struct {
			Command string `json:"command"`
		}
		if err := json.Unmarshal(t.Input.Options, &o); err != nil || o.Command == "" {
			return nil, fmt.Errorf("command task without a command name: %v", err)
		}
		return set.Run(ctx, o.Command, Input{Path: input, OutDir: outDir, FileName: t.Input.FileName, RunID: t.RunID, SHA256: t.Input.SHA256, Memory: memory})
	}
}

package analysis

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/picoflow/picoflow/internal/emd"
	"github.com/picoflow/picoflow/internal/record"
	"github.com/picoflow/picoflow/internal/sandbox"
)

// sandboxName is the name Run is registered under for isolated runs.
const sandboxName = "analysis.run"

type isolatedRequest struct {
	Path    string  `json:"path"`
	OutDir  string  `json:"out_dir"`
	Options Options `json:"options"`
}

func init() {
	sandbox.Register(sandboxName, func(ctx context.Context, raw json.RawMessage) (any, error) {
		var req isolatedRequest
		if err := json.Unmarshal(raw, &req); err != nil {
			return nil, fmt.Errorf("analysis request: %w", err)
		}
		return Run(ctx, req.Path, req.OutDir, req.Options)
	})
	sandbox.RegisterError("emd.format", emd.ErrFormat)
	sandbox.RegisterError("emd.not_found", emd.ErrNotFound)
	sandbox.RegisterError("emd.too_large", emd.ErrTooLarge)
	sandbox.RegisterError("emd.unsupported", emd.ErrUnsupported)
}

// RunIsolated is Run in a child process under lim (the program must call
// sandbox.Main at start). A file that makes the HDF5 layer allocate without
// bound or crash fails this one analysis with sandbox.ErrOutOfMemory or
// sandbox.ErrCrashed; the caller keeps running. Errors keep the emd
// sentinels (errors.Is(err, emd.ErrFormat) works across the boundary).
func RunIsolated(ctx context.Context, path, outDir string, opt Options, lim sandbox.Limits) (*record.Record, error) {
	var rec record.Record
	if err := sandbox.Run(ctx, sandboxName, isolatedRequest{Path: path, OutDir: outDir, Options: opt}, &rec, lim); err != nil {
		return nil, fmt.Errorf("analyze %q: %w", path, err)
	}
	return &rec, nil
}

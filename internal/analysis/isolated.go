package analysis

import (
	"context"
	"encoding/json"
	"errors"
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

// RegisterWorkers adds the analysis to a program's worker registry, with the
// emd sentinel errors so they survive the process boundary.
func RegisterWorkers(reg *sandbox.Registry) {
	reg.Register(sandboxName, func(ctx context.Context, raw json.RawMessage) (any, error) {
		var req isolatedRequest
		if err := json.Unmarshal(raw, &req); err != nil {
			return nil, fmt.Errorf("analysis request: %w", err)
		}
		return Run(ctx, req.Path, req.OutDir, req.Options)
	})
	reg.RegisterError("emd.format", emd.ErrFormat)
	reg.RegisterError("emd.not_found", emd.ErrNotFound)
	reg.RegisterError("emd.too_large", emd.ErrTooLarge)
	reg.RegisterError("emd.unsupported", emd.ErrUnsupported)
}

// RunIsolated is Run in a child process under lim (reg must hold
// RegisterWorkers' functions and the program must call reg.Main at start). A file that makes the HDF5 layer allocate without
// bound or crash fails this one analysis with sandbox.ErrOutOfMemory or
// sandbox.ErrCrashed; the caller keeps running. Errors keep the emd
// sentinels (errors.Is(err, emd.ErrFormat) works across the boundary).
func RunIsolated(ctx context.Context, reg *sandbox.Registry, path, outDir string, opt Options, lim sandbox.Limits) (*record.Record, error) {
	var rec record.Record
	if err := reg.Run(ctx, sandboxName, isolatedRequest{Path: path, OutDir: outDir, Options: opt}, &rec, lim); err != nil {
		if errors.Is(err, sandbox.ErrCrashed) || errors.Is(err, sandbox.ErrOutOfMemory) {
			return nil, fmt.Errorf("analyze %q: %w", path, err)
		}
		return nil, err // the child's error already names the file
	}
	return &rec, nil
}

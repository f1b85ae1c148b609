package compute

import (
	"context"
	"errors"
	"strings"
)

// Block states, as every Provider reports them.
const (
	BlockQueued   = "queued"
	BlockRunning  = "running"
	BlockFinished = "finished" // ended, for any reason
)

// ErrRejected means the scheduler refused a block for good.
var ErrRejected = errors.New("block rejected by the scheduler")

// BlockSpec describes a block: a batch job (or process) running one
// command, normally `picoflow endpoint --exit-when-idle ...`.
type BlockSpec struct {
	Name    string
	Command []string
	// Env adds environment variables (the endpoint's token).
	Env []string
	// Dir is where the block writes its log.
	Dir string
}

// Provider starts blocks on some kind of machine: this one, a Slurm or a
// PBS cluster. Submit returns once the block is queued; Status and Cancel
// are idempotent; Status of an unknown or long-gone block is
// BlockFinished.
type Provider interface {
	Submit(ctx context.Context, spec BlockSpec) (id string, err error)
	Status(ctx context.Context, id string) (string, error)
	Cancel(ctx context.Context, id string) error
}

// ShellQuote joins args for a POSIX shell, each single-quoted.
func ShellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// Package slurm is the compute provider for Slurm clusters: a block is a
// batch job submitted with sbatch, watched with squeue, cancelled with
// scancel.
package slurm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/picoflow/picoflow/internal/compute"
)

// Provider submits blocks to Slurm.
type Provider struct {
	// Partition, Account and Time (e.g. "01:00:00") are passed to sbatch
	// when set; Extra are further sbatch options.
	Partition, Account, Time string
	Extra                    []string
}

var _ compute.Provider = (*Provider)(nil)

// Submit runs sbatch --parsable and returns the job ID.
func (p *Provider) Submit(ctx context.Context, spec compute.BlockSpec) (string, error) {
	if len(spec.Command) == 0 {
		return "", fmt.Errorf("sbatch: %w: no command", compute.ErrRejected)
	}
	// The block's log and working directory (on a cluster: a shared file
	// system the server writes too).
	if err := os.MkdirAll(spec.Dir, 0o750); err != nil {
		return "", fmt.Errorf("sbatch: %w", err)
	}
	args := []string{"--parsable", "--job-name", "picoflow-" + spec.Name, "--output", filepath.Join(spec.Dir, spec.Name+"-%j.log"), "--chdir", spec.Dir}
	if p.Partition != "" {
		args = append(args, "--partition", p.Partition)
	}
	if p.Account != "" {
		args = append(args, "--account", p.Account)
	}
	if p.Time != "" {
		args = append(args, "--time", p.Time)
	}
	args = append(args, p.Extra...)
	wrap := compute.ShellQuote(spec.Command)
	if len(spec.Env) > 0 {
		wrap = "env " + compute.ShellQuote(spec.Env) + " " + wrap
	}
	args = append(args, "--wrap", wrap)
	out, err := exec.CommandContext(ctx, "sbatch", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("sbatch: %w: %v: %s", compute.ErrRejected, err, strings.TrimSpace(string(out)))
	}
	id := strings.TrimSpace(strings.Split(strings.TrimSpace(string(out)), ";")[0])
	if id == "" {
		return "", fmt.Errorf("sbatch: no job id in %q", out)
	}
	return id, nil
}

// Status maps squeue's state; a job squeue no longer lists has finished.
func (p *Provider) Status(ctx context.Context, id string) (string, error) {
	out, err := exec.CommandContext(ctx, "squeue", "-h", "-j", id, "-o", "%T").CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		if strings.Contains(s, "Invalid job id") {
			return compute.BlockFinished, nil
		}
		return "", fmt.Errorf("squeue %s: %w: %s", id, err, s)
	}
	switch s {
	case "":
		return compute.BlockFinished, nil
	case "PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED":
		return compute.BlockQueued, nil
	case "RUNNING", "COMPLETING":
		return compute.BlockRunning, nil
	}
	return compute.BlockFinished, nil
}

// Cancel runs scancel.
func (p *Provider) Cancel(ctx context.Context, id string) error {
	if out, err := exec.CommandContext(ctx, "scancel", id).CombinedOutput(); err != nil {
		return fmt.Errorf("scancel %s: %w: %s", id, err, strings.TrimSpace(string(out)))
	}
	return nil
}

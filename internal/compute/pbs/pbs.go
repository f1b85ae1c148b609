// Package pbs is the compute provider for PBS Pro / OpenPBS clusters: a
// block is a job script given to qsub, watched with qstat, deleted with
// qdel.
package pbs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/picoflow/picoflow/internal/compute"
)

// Provider submits blocks to PBS.
type Provider struct {
	// Queue, Account and Walltime ("01:00:00") become qsub options when
	// set; Select is a resource request ("select=1:ncpus=32").
	Queue, Account, Walltime, Select string
}

var _ compute.Provider = (*Provider)(nil)

// Submit writes a job script to qsub's standard input.
func (p *Provider) Submit(ctx context.Context, spec compute.BlockSpec) (string, error) {
	if len(spec.Command) == 0 {
		return "", fmt.Errorf("qsub: %w: no command", compute.ErrRejected)
	}
	// The block's log and working directory (on a cluster: a shared file
	// system the server writes too).
	if err := os.MkdirAll(spec.Dir, 0o750); err != nil {
		return "", fmt.Errorf("qsub: %w", err)
	}
	args := []string{"-N", "picoflow-" + spec.Name, "-j", "oe", "-o", filepath.Join(spec.Dir, spec.Name+".log")}
	if p.Queue != "" {
		args = append(args, "-q", p.Queue)
	}
	if p.Account != "" {
		args = append(args, "-A", p.Account)
	}
	if p.Walltime != "" {
		args = append(args, "-l", "walltime="+p.Walltime)
	}
	if p.Select != "" {
		args = append(args, "-l", p.Select)
	}
	script := "#!/bin/sh\ncd " + compute.ShellQuote([]string{spec.Dir}) + "\n"
	if len(spec.Env) > 0 {
		script += "exec env " + compute.ShellQuote(spec.Env) + " " + compute.ShellQuote(spec.Command) + "\n"
	} else {
		script += "exec " + compute.ShellQuote(spec.Command) + "\n"
	}
	cmd := exec.CommandContext(ctx, "qsub", args...)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("qsub: %w: %v: %s", compute.ErrRejected, err, strings.TrimSpace(string(out)))
	}
	id := strings.TrimSpace(string(out))
	if id == "" {
		return "", fmt.Errorf("qsub: no job id")
	}
	return id, nil
}

// Status parses `qstat -f` (job_state: Q, H, W queued; R, E running); a
// job qstat does not know has finished.
func (p *Provider) Status(ctx context.Context, id string) (string, error) {
	out, err := exec.CommandContext(ctx, "qstat", "-f", id).CombinedOutput()
	s := string(out)
	if err != nil {
		if strings.Contains(s, "Unknown Job") || strings.Contains(s, "Job has finished") {
			return compute.BlockFinished, nil
		}
		return "", fmt.Errorf("qstat %s: %w: %s", id, err, strings.TrimSpace(s))
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "job_state = "); ok {
			switch strings.TrimSpace(v) {
			case "Q", "H", "W", "T":
				return compute.BlockQueued, nil
			case "R", "E", "B":
				return compute.BlockRunning, nil
			default:
				return compute.BlockFinished, nil
			}
		}
	}
	return compute.BlockFinished, nil
}

// Cancel runs qdel.
func (p *Provider) Cancel(ctx context.Context, id string) error {
	if out, err := exec.CommandContext(ctx, "qdel", id).CombinedOutput(); err != nil {
		s := strings.TrimSpace(string(out))
		if strings.Contains(s, "Unknown Job") {
			return nil
		}
		return fmt.Errorf("qdel %s: %w: %s", id, err, s)
	}
	return nil
}

// Package local is the compute provider that starts blocks as processes on
// this machine (the embedded default, and a stand-in for a cluster).
package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"github.com/picoflow/picoflow/internal/compute"
)

// Provider runs blocks as child processes.
type Provider struct {
	mu    sync.Mutex
	procs map[string]*exec.Cmd
	done  map[string]bool
	next  int
}

var _ compute.Provider = (*Provider)(nil)

// New returns a provider.
func New() *Provider { return &Provider{procs: map[string]*exec.Cmd{}, done: map[string]bool{}} }

// Submit starts the block's command.
func (p *Provider) Submit(ctx context.Context, spec compute.BlockSpec) (string, error) {
	if len(spec.Command) == 0 {
		return "", fmt.Errorf("local submit: %w: no command", compute.ErrRejected)
	}
	if err := os.MkdirAll(spec.Dir, 0o750); err != nil {
		return "", fmt.Errorf("local submit: %w", err)
	}
	p.mu.Lock()
	p.next++
	id := strconv.Itoa(p.next)
	p.mu.Unlock()
	log, err := os.Create(filepath.Join(spec.Dir, spec.Name+"-"+id+".log"))
	if err != nil {
		return "", fmt.Errorf("local submit: %w", err)
	}
	cmd := exec.Command(spec.Command[0], spec.Command[1:]...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return "", fmt.Errorf("local submit: %w: %w", compute.ErrRejected, err)
	}
	p.mu.Lock()
	p.procs[id] = cmd
	p.mu.Unlock()
	go func() {
		cmd.Wait()
		log.Close()
		p.mu.Lock()
		p.done[id] = true
		p.mu.Unlock()
	}()
	return id, nil
}

// Status reports running until the process exits.
func (p *Provider) Status(_ context.Context, id string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.procs[id]; !ok || p.done[id] {
		return compute.BlockFinished, nil
	}
	return compute.BlockRunning, nil
}

// Cancel kills the block's process group.
func (p *Provider) Cancel(_ context.Context, id string) error {
	p.mu.Lock()
	cmd, ok := p.procs[id]
	done := p.done[id]
	p.mu.Unlock()
	if !ok || done {
		return nil
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	return nil
}

package agentcli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/kardianos/service"
	"github.com/spf13/cobra"
)

// The agent as an operating-system service (github.com/kardianos/service):
// a Windows service, a macOS launchd agent or a Linux systemd unit, which
// runs `picoflow-agent run --config FILE` and restarts it when it fails.

// serviceConfig describes the agent's service; user installs it for the
// current user (launchd agent, systemd --user) instead of the system.
func serviceConfig(configPath string, user bool) (*service.Config, error) {
	if configPath == "" {
		return nil, errors.New("service: --config is required: the service runs `run --config FILE` (see docs/operations.md for the YAML)")
	}
	abs, err := filepath.Abs(configPath)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	if _, err := LoadConfig(abs); err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	opts := service.KeyValue{"Restart": "on-failure", "OnFailure": "restart", "OnFailureDelayDuration": "10s"}
	if user {
		opts["UserService"] = true
	}
	return &service.Config{
		Name:        "picoflow-agent",
		DisplayName: "picoflow agent",
		Description: "Sends every finished file of the instrument folders to the picoflow server.",
		Arguments:   []string{"run", "--config", abs},
		Option:      opts,
	}, nil
}

// program runs the agent under a service manager.
type program struct {
	run    func(ctx context.Context) error
	cancel context.CancelFunc
	done   chan error
}

func (p *program) Start(service.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan error, 1)
	go func() { p.done <- p.run(ctx) }()
	return nil
}

func (p *program) Stop(service.Service) error {
	p.cancel()
	return <-p.done
}

// runAsService runs fn under the service manager when the process was
// started by one (Windows SCM, launchd, systemd); it reports false when
// the process runs interactively.
func runAsService(fn func(ctx context.Context) error) (bool, error) {
	if service.Interactive() || runtime.GOOS != "windows" {
		// launchd and systemd start the command as any other: the signal
		// handling of `run` is all they need.
		return false, nil
	}
	s, err := service.New(&program{run: fn}, &service.Config{Name: "picoflow-agent"})
	if err != nil {
		return true, fmt.Errorf("service: %w", err)
	}
	return true, s.Run()
}

func serviceCmd() *cobra.Command {
	var configPath string
	var user bool
	cmd := &cobra.Command{
		Use:   "service install|uninstall|start|stop|restart|status",
		Short: "Install the agent as a system service (Windows service, launchd, systemd) running `run --config FILE`",
		Long: `Install, remove, start or stop the agent as a service of the operating system:
a Windows service (run as Administrator), a macOS launchd daemon or agent, or a
systemd unit on Linux. The service runs 'picoflow-agent run --config FILE' and is
restarted when it fails. Keep the token out of the YAML: set PICOFLOW_TOKEN for
the service (Windows: the service's environment, systemd: an EnvironmentFile).
  picoflow-agent service install --config C:\picoflow\agent.yaml
  picoflow-agent service start
--user installs it for the current user instead (launchd agent, systemd --user).`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"install", "uninstall", "start", "stop", "restart", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := &service.Config{Name: "picoflow-agent", Option: service.KeyValue{"UserService": user}}
			if args[0] == "install" {
				var err error
				if cfg, err = serviceConfig(configPath, user); err != nil {
					return err
				}
				if exe, err := os.Executable(); err == nil {
					cfg.Executable = exe
				}
			}
			s, err := service.New(&program{}, cfg)
			if err != nil {
				return fmt.Errorf("service: %w", err)
			}
			if args[0] == "status" {
				st, err := s.Status()
				if err != nil {
					return fmt.Errorf("service: %w", err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), map[service.Status]string{service.StatusRunning: "running", service.StatusStopped: "stopped"}[st])
				return nil
			}
			if err := service.Control(s, args[0]); err != nil {
				return fmt.Errorf("service %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "service picoflow-agent: %s done (%s)\n", args[0], s.Platform())
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "the agent's YAML configuration (install)")
	cmd.Flags().BoolVar(&user, "user", false, "a service of the current user (launchd agent, systemd --user)")
	return cmd
}

package main

import (
	"fmt"
	"github.com/picoflow/picoflow/internal/configfile"
	"github.com/picoflow/picoflow/internal/logging"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/command"
	"github.com/picoflow/picoflow/internal/compute"
	"github.com/picoflow/picoflow/internal/sandbox"
)

func endpointCmd(workers *sandbox.Registry) *cobra.Command {
	var server, name, workDir string
	var commands []string
	var cmdMemMB uint64
	var n int
	var memMB uint64
	var idle time.Duration
	var cfgFile string
	cmd := &cobra.Command{
		Use:   "endpoint",
		Short: "Run a compute endpoint: pull analysis tasks from the server over HTTPS and run them here",
		Long: `Run a compute endpoint (e.g. on an HPC login node or a batch job): it connects
out to the server (no inbound ports), claims tasks of the hpc flow with a lease it
renews while working, reads the input from the shared file system when the
server's path is visible here or downloads it, checks its SHA-256, runs the
analysis in memory-limited worker processes, and sends the products back.
If it dies, the server gives its tasks to another endpoint when the lease lapses.
The token (PICOFLOW_TOKEN) needs role:endpoint:
  picoflow token create --subject endpoint:polaris --group role:endpoint`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgFile != "" {
				if err := configfile.Apply(cmd.Flags(), cfgFile); err != nil {
					return err
				}
			}
			token := os.Getenv("PICOFLOW_TOKEN")
			if token == "" {
				return fmt.Errorf("endpoint: no API token (set PICOFLOW_TOKEN)")
			}
			cmds, err := command.Parse(commands)
			if err != nil {
				return fmt.Errorf("endpoint: %w", err)
			}
			e := &compute.Endpoint{Server: strings.TrimRight(server, "/"), Token: token, Name: name, Workers: n, WorkDir: workDir,
				Run:    command.EndpointRun(cmds, cmdMemMB<<20, analysis.EndpointRun(workers, sandbox.Limits{Memory: memMB << 20})),
				Logger: logging.New(slog.LevelInfo), IdleExit: idle}
			if err := e.Start(cmd.Context()); err != nil {
				return err
			}
			select {
			case <-cmd.Context().Done():
			case <-e.Done():
			}
			e.Stop()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "YAML file of settings: each key a flag's name (server: https://..., workers: 4, command: [...]); flags given here win")
	f.StringVar(&server, "server", "http://127.0.0.1:8470", "server base URL, or several replicas' URLs separated by commas (tried in turn when one is unreachable)")
	f.StringVar(&name, "name", "", "endpoint name (default: the host name)")
	f.IntVar(&n, "workers", 2, "tasks run at once")
	f.StringVar(&workDir, "work-dir", "", "scratch space for inputs and products (default: a temporary directory)")
	f.DurationVar(&idle, "exit-when-idle", 0, "exit after this long without a task (batch blocks; 0: never)")
	f.Uint64Var(&memMB, "analysis-memory-mb", sandbox.DefaultMemory>>20, "memory limit of one analysis worker process (MiB)")
	f.Uint64Var(&cmdMemMB, "command-memory-mb", 0, "address-space cap of each command (MiB; 0: none; Linux, via prlimit; not for Java or CUDA programs)")
	f.StringArrayVar(&commands, "command", nil, "NAME=COMMAND LINE that flow steps of type command (where: endpoint) may run here; {input}, {output}, {name}, {run} are replaced (repeatable)")
	return cmd
}

// Command picoflow links an analytical electron microscope to facility
// storage and compute: it reads EMD files, analyses them and catalogues the
// results. `picoflow help` lists the subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/picoflow/picoflow/internal/logging"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/agentcli"
	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/emd"
	"github.com/picoflow/picoflow/internal/sandbox"
)

func main() {
	// Functions that run in memory-limited worker processes; a worker
	// process started by the sandbox runs its function and exits here.
	workers := sandbox.NewRegistry()
	analysis.RegisterWorkers(workers)
	workers.Main()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, workers, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the exit status.
func run(ctx context.Context, workers *sandbox.Registry, args []string) int {
	root := &cobra.Command{
		Use:           "picoflow",
		Short:         "Move, analyse and catalogue electron microscope data",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	logging.AddFlag(root.PersistentFlags())
	root.AddCommand(analyzeCmd(workers), reanalyzeCmd(), doctorCmd(), simulateCmd(), benchCmd(workers), serverCmd(workers), demoCmd(workers), statsCmd(), tokenCmd(), userCmd(), endpointCmd(workers), agentcli.Command("agent"))
	root.SetArgs(args)
	return exitCode(root.ExecuteContext(ctx))
}

// exitCode maps errors to messages and exit codes in one place.
func exitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "picoflow: interrupted")
		return 130
	case errors.Is(err, emd.ErrFormat), errors.Is(err, emd.ErrUnsupported), errors.Is(err, emd.ErrTooLarge), errors.Is(err, emd.ErrNotFound):
		fmt.Fprintf(os.Stderr, "picoflow: bad input: %v\n", err)
		return 1
	case errors.Is(err, sandbox.ErrOutOfMemory), errors.Is(err, sandbox.ErrCrashed):
		fmt.Fprintf(os.Stderr, "picoflow: analysis failed (the file is probably damaged; the file itself is untouched): %v\n", err)
		return 1
	default:
		fmt.Fprintf(os.Stderr, "picoflow: %v\n", err)
		return 1
	}
}

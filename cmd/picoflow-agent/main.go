// Command picoflow-agent runs on the instrument PC (Windows, macOS, Linux;
// built with CGO_ENABLED=0): it watches acquisition folders and sends every
// finished file to the picoflow server. See `picoflow-agent run --help`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/picoflow/picoflow/internal/agentcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := agentcli.Command("picoflow-agent")
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true // main prints the error once
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "picoflow-agent:", err)
		os.Exit(1)
	}
}

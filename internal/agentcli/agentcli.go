// Package agentcli is the command line of the agent, shared by the small
// instrument-PC binary (picoflow-agent) and `picoflow agent`.
package agentcli

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"github.com/picoflow/picoflow/internal/logging"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/agent"
	"github.com/picoflow/picoflow/internal/replicas"
	"github.com/picoflow/picoflow/internal/upload"
)

// Command returns the agent command with run and status subcommands.
func Command(use string) *cobra.Command {
	root := &cobra.Command{Use: use, Short: "Watch instrument folders and send every finished file to the picoflow server"}
	logging.AddFlag(root.PersistentFlags())
	root.AddCommand(runCmd(), statusCmd(), serviceCmd())
	return root
}

// LoadConfig reads an agent YAML file; unknown keys are errors.
func LoadConfig(path string) (agent.Config, error) {
	var c agent.Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("agent config: %w", err)
	}
	if err := yaml.NewDecoder(bytes.NewReader(b), yaml.DisallowUnknownField()).Decode(&c); err != nil {
		return c, fmt.Errorf("agent config %s: %w", path, err)
	}
	return c, nil
}

func runCmd() *cobra.Command {
	var cfgPath, server, ledger, name, instrument string
	var folders []string
	var settle time.Duration
	var rateMB float64
	var maxRate string
	var schedule []string
	var verbose, normalPriority bool
	var compress string
	var streams int
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent until interrupted",
		Long: `Run the agent. Settings come from --config (YAML) and flags; the API token
from the PICOFLOW_TOKEN environment variable (or the config's token).
  --folder DIR=FLOW   watch DIR (recursively) and send its *.emd files to FLOW
Example:
  PICOFLOW_TOKEN=pf_... picoflow-agent run --server https://picoflow.example \
      --folder D:\Velox\SI=hyperspectral --folder D:\Velox\Movies=spatiotemporal`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg agent.Config
			if cfgPath != "" {
				var err error
				if cfg, err = LoadConfig(cfgPath); err != nil {
					return err
				}
			}
			if server != "" {
				cfg.Server = strings.TrimRight(server, "/")
			}
			if ledger != "" {
				cfg.Ledger = ledger
			}
			if name != "" {
				cfg.Name = name
			}
			if instrument != "" {
				cfg.Instrument = instrument
			}
			if settle > 0 {
				cfg.Settle = settle
			}
			if rateMB > 0 {
				cfg.MaxBytesPerSecond = int64(rateMB * 1e6)
			}
			if maxRate != "" {
				cfg.MaxRate = maxRate
			}
			if len(schedule) > 0 {
				cfg.RateSchedule = schedule
			}
			if normalPriority {
				cfg.NormalPriority = true
			}
			if compress != "" {
				cfg.Compress = compress
			}
			if streams > 0 {
				cfg.Streams = streams
			}
			for _, f := range folders {
				dir, flowName, ok := strings.Cut(f, "=")
				if !ok || dir == "" || flowName == "" {
					return fmt.Errorf("agent: --folder %q: want DIR=FLOW, e.g. --folder D:\\Velox\\SI=hyperspectral", f)
				}
				cfg.Folders = append(cfg.Folders, agent.Folder{Path: dir, Flow: flowName})
			}
			if t := os.Getenv("PICOFLOW_TOKEN"); t != "" {
				cfg.Token = t
			}
			if cfg.Token == "" {
				return fmt.Errorf("agent: no API token (set PICOFLOW_TOKEN)")
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			cfg.Logger = logging.New(level)
			runAgent := func(ctx context.Context) error {
				a, err := agent.New(ctx, cfg)
				if err != nil {
					return err
				}
				if err := a.Check(ctx); err != nil {
					a.Stop()
					return err
				}
				if err := a.Start(ctx); err != nil {
					return err
				}
				<-ctx.Done()
				a.Stop()
				return nil
			}
			// Started by the Windows service manager: run under it.
			if ok, err := runAsService(runAgent); ok {
				return err
			}
			return runAgent(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "agent YAML configuration")
	f.StringVar(&server, "server", "", "server base URL, or several replicas' URLs separated by commas")
	f.StringArrayVar(&folders, "folder", nil, "DIR=FLOW to watch (repeatable)")
	f.StringVar(&ledger, "ledger", "", "ledger database (default picoflow-agent.db)")
	f.StringVar(&name, "name", "", "agent name (default: host name)")
	f.StringVar(&instrument, "instrument", "", "instrument name for the records")
	f.DurationVar(&settle, "settle", 0, "how long a file must stay unchanged (default 2s)")
	f.Float64Var(&rateMB, "max-mb-per-s", 0, "upload rate cap in MB/s (default: none; --max-rate says it in bits)")
	f.StringVar(&maxRate, "max-rate", "", "cap on the upload rate of all files together: 400Mbit, 1Gbit, 50MB/s (default: none)")
	f.StringArrayVar(&schedule, "rate-schedule", nil, `the cap by time of day, "HH:MM-HH:MM RATE" (repeatable): "22:00-06:00 unlimited"`)
	f.BoolVar(&normalPriority, "normal-priority", false, "keep normal CPU and I/O priority (default: below the microscope's software)")
	f.StringVar(&compress, "compress", "", "zstd on the wire: auto (when it makes the transfer faster; the default), never, always")
	f.IntVar(&streams, "streams", 0, "parallel streams per large file (default: from the measured round trip; 1: never parallel)")
	f.BoolVarP(&verbose, "verbose", "v", false, "debug logging")
	return cmd
}

func statusCmd() *cobra.Command {
	var ledger, server string
	var limit int
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the newest files in the agent's ledger and their state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := context.WithoutCancel(cmd.Context())
			out := cmd.OutOrStdout()
			if server != "" {
				set, err := replicas.Parse(server)
				if err != nil {
					return err
				}
				for _, base := range set.Bases() {
					fmt.Fprintf(out, "server %s: %s\n", base, probe(ctx, base))
				}
			}
			if _, err := os.Stat(ledger); err != nil {
				return fmt.Errorf("no agent ledger at %s (--ledger): %w", ledger, err)
			}
			counts, err := agent.LedgerCounts(ctx, ledger)
			if err != nil {
				return err
			}
			var parts []string
			for _, st := range agent.States {
				if n := counts[st]; n > 0 {
					parts = append(parts, fmt.Sprintf("%d %s", n, st))
				}
			}
			fmt.Fprintf(out, "files: %s\n", cmp.Or(strings.Join(parts, ", "), "none yet"))
			if r, err := agent.ReadRates(ctx, ledger); err == nil && !r.Updated.IsZero() {
				line := fmt.Sprintf("uploads: %s now, cap %s", upload.FormatRate(r.Sent), upload.FormatRate(r.Cap))
				if r.Sent < 1 {
					line = "uploads: idle, cap " + upload.FormatRate(r.Cap)
				}
				if r.Schedule != "" {
					line += " (schedule: " + r.Schedule + ")"
				}
				if r.Files > 0 {
					line += fmt.Sprintf("; %d files, %.1f MB to send", r.Files, float64(r.Waiting)/1e6)
					if r.ETA > 0 {
						line += ", about " + r.ETA.Round(time.Second).String()
					}
				}
				if age := time.Since(r.Updated); age > time.Minute {
					line += fmt.Sprintf(" (as of %s ago: is the agent running?)", age.Round(time.Second))
				}
				fmt.Fprintln(out, line)
			}
			waiting, err := agent.ReadWaiting(ctx, ledger)
			if err != nil {
				return err
			}
			for _, w := range waiting {
				fmt.Fprintf(out, "waiting: %s (%.1f MB, since %s): %s\n", w.Path, float64(w.Size)/1e6, w.Since.Format(time.DateTime), w.Reason)
			}
			fmt.Fprintln(out)
			entries, err := agent.ReadLedger(ctx, ledger, limit)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STATE\tFILE\tSIZE\tRUN\tUPDATED\tERROR")
			for _, e := range entries {
				fmt.Fprintf(tw, "%s\t%s\t%.1f MB\t%s\t%s\t%s\n", e.State, e.Path, float64(e.Size)/1e6, e.RunID, e.Updated.Format(time.DateTime), e.Error)
				for _, a := range strings.Split(e.Alerts, "\n") {
					if a != "" {
						fmt.Fprintf(tw, "\t  ALERT: %s\t\t\t\t\n", a)
					}
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&ledger, "ledger", "picoflow-agent.db", "ledger database")
	cmd.Flags().IntVar(&limit, "limit", 30, "number of files")
	cmd.Flags().StringVar(&server, "server", "", "also check that the server (or each of several replicas, comma-separated) answers")
	return cmd
}

// probe asks a server's /healthz and says how it went.
func probe(ctx context.Context, base string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return "bad URL: " + err.Error()
	}
	t0 := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "unreachable: " + err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "answers " + resp.Status
	}
	return fmt.Sprintf("reachable (%.1f ms)", float64(time.Since(t0).Microseconds())/1e3)
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/store"
)

func statsCmd() *cobra.Command {
	var data string
	var since time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Flow runtimes, per-step active time and orchestration overhead (the paper's Table 1 and Fig. 4)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := store.Open(cmd.Context(), filepath.Join(data, "picoflow.db"))
			if err != nil {
				return err
			}
			defer db.Close()
			var from time.Time
			if since > 0 {
				from = time.Now().Add(-since)
			}
			st, err := flow.Stats(cmd.Context(), db.Read, from)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStats(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "picoflow-data", "server data directory")
	cmd.Flags().DurationVar(&since, "since", 0, "only runs created within this long (default: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	return cmd
}

func secs(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1e3)
	}
}

// printStats writes the flow table (runtime, active, overhead) and the
// per-step breakdown.
func printStats(w io.Writer, st []flow.FlowStats) {
	if len(st) == 0 {
		fmt.Fprintln(w, "no finished runs yet")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLOW\tRUNS\tFAILED\tRUNTIME min\tmedian\tmean\tmax\tACTIVE mean\tOVERHEAD mean\tmedian\tmax\tshare")
	for _, s := range st {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f%%\n", s.Flow, s.Runs, s.Failed,
			secs(s.MinRuntime), secs(s.MedianRuntime), secs(s.MeanRuntime), secs(s.MaxRuntime), secs(s.MeanActive),
			secs(s.MeanOverhead), secs(s.MedianOverhead), secs(s.MaxOverhead), 100*s.OverheadShare)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLOW\tSTEP\tACTIVE mean\tmin\tmax\tshare of runtime")
	for _, s := range st {
		for _, p := range s.Steps {
			share := 0.0
			if s.MeanRuntime > 0 {
				share = 100 * float64(p.MeanActive) / float64(s.MeanRuntime)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f%%\n", s.Flow, p.Name, secs(p.MeanActive), secs(p.MinActive), secs(p.MaxActive), share)
		}
	}
	tw.Flush()
}

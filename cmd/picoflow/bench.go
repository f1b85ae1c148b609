package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/sandbox"
	"github.com/picoflow/picoflow/internal/simulate"
)

// hyperspyAnalysis is the same work done the usual Python way: load with
// HyperSpy, sum to an intensity map and a spectrum, plot both with matplotlib.
const hyperspyAnalysis = `
import sys, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt, numpy as np, hyperspy.api as hs
s = [x for x in hs.load(sys.argv[1]) if x.metadata.General.title == "EDS"][0]
img = s.sum(-1).data
spec = s.sum((0, 1))
ax = spec.axes_manager[0]
e = ax.offset + ax.scale * np.arange(ax.size)
fig = plt.figure(); plt.imshow(img); plt.colorbar(); fig.savefig(sys.argv[2] + "/intensity.png"); plt.close(fig)
fig = plt.figure(); plt.semilogy(e, np.maximum(spec.data, 0.5)); fig.savefig(sys.argv[2] + "/spectrum.png"); plt.close(fig)
`

func benchCmd(workers *sandbox.Registry) *cobra.Command {
	root := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks against baselines measured in the same run: analysis, transfer, flows",
		Long: `Benchmarks, each against a baseline measured in the same run:
  analysis  picoflow analyze vs HyperSpy + matplotlib on a 91 MB spectrum image
  eds       the EDS model fit, fitted maps and quantification vs HyperSpy fitting the same model
  transfer  resumable upload over loopback (and SHA-256 verification) vs cp
  flows     files through agent, server and analysis: orchestration overhead
  campaign  a re-analysis campaign over N records, the server killed half way (run on its own)
'picoflow bench' runs all three.`,
		Args: cobra.NoArgs,
	}
	a, t, f := benchAnalysisCmd(workers), benchTransferCmd(), benchFlowsCmd(workers)
	root.AddCommand(benchEDSCmd(workers), benchCampaignCmd(workers))
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		for _, c := range []*cobra.Command{a, t, f} {
			fmt.Fprintf(cmd.OutOrStdout(), "== %s\n", c.Name())
			c.SetContext(cmd.Context())
			c.SetOut(cmd.OutOrStdout())
			if err := c.RunE(c, nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout())
		}
		return nil
	}
	root.AddCommand(a, t, f)
	return root
}

func benchAnalysisCmd(workers *sandbox.Registry) *cobra.Command {
	var size int
	var sizeMB float64
	var python string
	cmd := &cobra.Command{
		Use:   "analysis",
		Short: "Time picoflow analyze against HyperSpy + matplotlib on the same spectrum image",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := os.MkdirTemp("", "picoflow-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			path := filepath.Join(dir, "si.emd")
			if _, err := simulate.WriteSpectrumImage(cmd.Context(), path, simulate.SpectrumImageSpec{
				Width: size, Height: size, Elements: []string{"Au", "Fe", "Cu"}, CountsPerPixel: simulate.CountsForSize(int64(sizeMB*1e6), size, size), Seed: 1,
			}); err != nil {
				return err
			}
			fi, err := os.Stat(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "spectrum image %d×%d, %.1f MB\n", size, size, float64(fi.Size())/1e6)
			t0 := time.Now()
			if _, err := analysis.RunIsolated(cmd.Context(), workers, path, filepath.Join(dir, "go"), analysis.Options{}, sandbox.Limits{}); err != nil {
				return err
			}
			goT := time.Since(t0)
			fmt.Fprintf(cmd.OutOrStdout(), "picoflow analyze (maps, spectrum, elements, element maps, record): %.2f s\n", goT.Seconds())
			pyDir := filepath.Join(dir, "py")
			if err := os.MkdirAll(pyDir, 0o755); err != nil {
				return err
			}
			t0 = time.Now()
			py := exec.CommandContext(cmd.Context(), python, "-c", hyperspyAnalysis, path, pyDir)
			py.Env = append(os.Environ(), "PYTHONWARNINGS=ignore")
			if out, err := py.CombinedOutput(); err != nil {
				return fmt.Errorf("bench: hyperspy: %w\n%s", err, out)
			}
			pyT := time.Since(t0)
			fmt.Fprintf(cmd.OutOrStdout(), "HyperSpy + matplotlib (maps and spectrum only):                  %.2f s\n", pyT.Seconds())
			fmt.Fprintf(cmd.OutOrStdout(), "speed-up: %.1fx\n", pyT.Seconds()/goT.Seconds())
			return nil
		},
	}
	cmd.Flags().IntVar(&size, "size", 512, "spectrum image width and height")
	cmd.Flags().Float64Var(&sizeMB, "size-mb", 91, "file size in MB (the paper's hyperspectral file is 91 MB)")
	cmd.Flags().StringVar(&python, "python", "/usr/bin/python3", "Python with Debian's python3-hyperspy")
	return cmd
}

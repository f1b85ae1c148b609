package main

import (
	"fmt"
	"github.com/picoflow/picoflow/internal/analysis/hyperspectral"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/record"
	"github.com/picoflow/picoflow/internal/sandbox"
)

func analyzeCmd(workers *sandbox.Registry) *cobra.Command {
	var out, creator string
	var opt analysis.Options
	var inProcess bool
	var frames string
	var kfactors []string
	var memMB uint64
	cmd := &cobra.Command{
		Use:   "analyze FILE",
		Short: "Analyse one EMD file: record.json, maps, spectrum and element maps",
		Long: `Analyse one EMD file (Velox or Berkeley/NCEM) and write to the output directory:
  record.json      DataCite-based record with instrument metadata in units
  spectrum.png/csv summed EDS spectrum on a calibrated keV axis (log scale)
  intensity.png    summed X-ray intensity map with colour bar
  map-<El>.png     one map per identified element: fitted net counts of its cleanest line family
  elements.json    identified elements (model fit: families, net counts, significance),
                   zero peak, detectors and frames used, composition
  map-<El>.npy     fitted net counts per pixel (float32, numpy.load), binned where counts are low
  atomic-percent-<El>.npy  Cliff-Lorimer composition per map pixel (NaN: too few counts)
  image.png        preview of the first image (HAADF, movie frame 0)
Bad or truncated files give a clear error and exit status 1. The analysis runs
in a worker process under a memory limit, so a damaged file that makes the HDF5
layer allocate without bound fails cleanly instead of exhausting the machine.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opt.Creator = creator
			var err error
			if opt.Hyperspectral.Frames, err = analysis.ParseFrames(frames); err != nil {
				return err
			}
			for _, kv := range kfactors {
				el, v, ok := strings.Cut(kv, "=")
				k, err := strconv.ParseFloat(v, 64)
				if !ok || err != nil || k <= 0 {
					return fmt.Errorf("--k-factor %q: want ELEMENT=VALUE, e.g. Fe=1.31", kv)
				}
				if opt.Hyperspectral.Quant.KFactors == nil {
					opt.Hyperspectral.Quant.KFactors = map[string]float64{}
				}
				opt.Hyperspectral.Quant.KFactors[el] = k
			}
			var rec *record.Record
			if inProcess {
				rec, err = analysis.Run(cmd.Context(), args[0], out, opt)
			} else {
				rec, err = analysis.RunIsolated(cmd.Context(), workers, args[0], out, opt, sandbox.Limits{Memory: memMB << 20})
			}
			if err != nil {
				return err
			}
			a := rec.Analysis
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n  %s\n  kind: %s", rec.Titles[0].Title, rec.Descriptions[0].Description, a.Kind)
			if len(a.Elements) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "  elements: %s", strings.Join(a.Elements, ", "))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\n  %d files in %s (%.0f ms)\n", len(rec.Files)-1, out, a.DurationMS)
			for _, w := range a.Warnings {
				fmt.Fprintf(cmd.OutOrStdout(), "  warning: %s\n", w)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&inProcess, "in-process", false, "run in this process (no worker process, no memory limit)")
	cmd.Flags().Uint64Var(&memMB, "memory-limit-mb", sandbox.DefaultMemory>>20, "memory limit of the worker process in MiB")
	cmd.Flags().StringVar(&opt.Model, "model", "", "YOLOv8-format ONNX model for particle detection in movies (default: the classical detector)")
	cmd.Flags().StringVar(&opt.ORTLibrary, "onnxruntime", "", "libonnxruntime.so (default $ONNXRUNTIME_LIB)")
	cmd.Flags().StringVarP(&out, "out", "o", "out", "output directory")
	cmd.Flags().StringVar(&creator, "creator", "", "creator recorded when the file names none")
	cmd.Flags().Float64Var(&opt.Hyperspectral.Identify.MinSignificance, "min-sigma", 5, "peak detection threshold in standard deviations")
	cmd.Flags().Float64Var(&opt.Hyperspectral.Identify.FWHMMn, "fwhm-mn", 0.130, "detector resolution at Mn Ka (keV)")
	cmd.Flags().StringVar(&frames, "frames", "", "spectrum images: frames FIRST:LAST (Python-style, LAST excluded; 2:4, 3:, :5; default all)")
	cmd.Flags().StringSliceVar(&kfactors, "k-factor", nil, "Cliff-Lorimer k-factor relative to Si K of an element's map line, ELEMENT=VALUE (repeatable; default: theoretical)")
	cmd.Flags().StringSliceVar(&opt.Hyperspectral.Quant.Exclude, "quant-exclude", nil, "elements left out of the composition, e.g. the support film and grid: C,Cu")
	cmd.Flags().Float64Var(&opt.Hyperspectral.Quant.BeamEnergy, "beam-kev", 0, "beam energy for the k-factors (default: the file's accelerating voltage)")
	cmd.Flags().IntSliceVar(&opt.Hyperspectral.Detectors, "detectors", nil, "spectrum images: detector streams to sum, by index (0,2; default all)")
	cmd.Flags().Float64Var(&opt.Hyperspectral.MinXRayEnergy, "min-xray-kev", hyperspectral.DefaultMinXRayEnergy, "events below this energy are the detector's zero (strobe) peak, not X-rays")
	return cmd
}

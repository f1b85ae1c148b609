package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/sandbox"
	"github.com/picoflow/picoflow/internal/simulate"
)

// hyperspyEDSFit is the EDS model fit done with HyperSpy on the same file:
// load, the summed spectrum's model (the same elements' lines, HyperSpy's
// automatic background) fitted, then the same model fitted pixel by pixel
// (multifit) on a crop, whose time per pixel is scaled to the whole image:
// a whole 512×512 multifit takes hours.
const hyperspyEDSFit = `
import sys, time, json, warnings
warnings.filterwarnings("ignore")
import numpy as np, hyperspy.api as hs
t0 = time.time()
s = [x for x in hs.load(sys.argv[1]) if x.metadata.General.title == "EDS"][0]
s.set_signal_type("EDS_TEM")
s.set_elements(json.loads(sys.argv[2]))
s.add_lines()
t_load = time.time() - t0
t0 = time.time()
spec = s.sum((0, 1))
m = spec.create_model(auto_background=True, auto_add_lines=True)
m.fit()
t_sum = time.time() - t0
t0 = time.time()
win = s.get_lines_intensity()
t_win = time.time() - t0
crop = int(sys.argv[3])
c = s.inav[0:crop, 0:crop]
t0 = time.time()
mc = c.create_model(auto_background=True, auto_add_lines=True)
mc.multifit(show_progressbar=False)
t_crop = time.time() - t0
ny, nx = s.axes_manager.navigation_shape[::-1]
print(json.dumps({"load": t_load, "sum_fit": t_sum, "windows": t_win, "crop_fit": t_crop, "crop_pixels": crop * crop, "pixels": int(ny * nx)}))
`

func benchEDSCmd(workers *sandbox.Registry) *cobra.Command {
	var size, runs, crop int
	var sizeMB float64
	var python string
	cmd := &cobra.Command{
		Use:   "eds",
		Short: "Time the full EDS analysis (fit, fitted maps, quantification, figures) against HyperSpy fitting the same model",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			dir, err := os.MkdirTemp("", "picoflow-bench-eds-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			path := filepath.Join(dir, "si.emd")
			elements := []string{"Au", "Fe", "Cu"}
			if _, err := simulate.WriteSpectrumImage(cmd.Context(), path, simulate.SpectrumImageSpec{
				Width: size, Height: size, Elements: elements, CountsPerPixel: simulate.CountsForSize(int64(sizeMB*1e6), size, size), Seed: 1,
			}); err != nil {
				return err
			}
			fi, err := os.Stat(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "spectrum image %d×%d×4096, %.1f MB, elements %s on C\n", size, size, float64(fi.Size())/1e6, strings.Join(elements, ", "))
			var times []float64
			var x int
			for i := range runs {
				t0 := time.Now()
				rec, err := analysis.RunIsolated(cmd.Context(), workers, path, filepath.Join(dir, fmt.Sprint("go", i)), analysis.Options{}, sandbox.Limits{})
				if err != nil {
					return err
				}
				times = append(times, time.Since(t0).Seconds())
				x = int(rec.Analysis.TotalCounts)
			}
			slices.Sort(times)
			goT := times[len(times)/2]
			fmt.Fprintf(out, "picoflow (read, zero peak, model fit, fitted maps of every pixel, quantification, figures, record): median %.2f s of %d runs (%.2f-%.2f), %d X-rays\n",
				goT, runs, times[0], times[len(times)-1], x)
			all := append(slices.Clone(elements), "C")
			arg, _ := json.Marshal(all)
			t0 := time.Now()
			py := exec.CommandContext(cmd.Context(), python, "-c", hyperspyEDSFit, path, string(arg), fmt.Sprint(crop))
			b, err := py.Output()
			if err != nil {
				return fmt.Errorf("bench eds: hyperspy: %w", err)
			}
			wall := time.Since(t0).Seconds()
			var hs struct {
				Load       float64 `json:"load"`
				SumFit     float64 `json:"sum_fit"`
				Windows    float64 `json:"windows"`
				CropFit    float64 `json:"crop_fit"`
				CropPixels int     `json:"crop_pixels"`
				Pixels     int     `json:"pixels"`
			}
			if err := json.Unmarshal(b, &hs); err != nil {
				return fmt.Errorf("bench eds: hyperspy said %s", b)
			}
			perPixel := hs.CropFit / float64(hs.CropPixels)
			full := hs.Load + hs.SumFit + perPixel*float64(hs.Pixels)
			fmt.Fprintf(out, "HyperSpy 1.7.3 (%.0f s wall): load %.1f s, summed-spectrum model fit %.2f s, window intensities %.1f s, multifit %d pixels %.1f s (%.3f s per pixel)\n",
				wall, hs.Load, hs.SumFit, hs.Windows, hs.CropPixels, hs.CropFit, perPixel)
			fmt.Fprintf(out, "HyperSpy fitting the same model on every pixel: %.0f s (load + summed fit + %d pixels × %.3f s, extrapolated from the crop)\n", full, hs.Pixels, perPixel)
			fmt.Fprintf(out, "ratio: picoflow %.0fx faster than HyperSpy's per-pixel fit; %.1fx faster than HyperSpy's load + window intensities alone (no fit)\n",
				full/goT, (hs.Load+hs.Windows)/goT)
			return nil
		},
	}
	cmd.Flags().IntVar(&size, "size", 512, "spectrum image width and height")
	cmd.Flags().Float64Var(&sizeMB, "size-mb", 91, "file size in MB (the paper's hyperspectral file is 91 MB)")
	cmd.Flags().IntVar(&runs, "runs", 3, "picoflow runs (the median is reported)")
	cmd.Flags().IntVar(&crop, "crop", 8, "HyperSpy multifit on a crop of this many pixels square")
	cmd.Flags().StringVar(&python, "python", "/usr/bin/python3", "Python with Debian's python3-hyperspy")
	return cmd
}

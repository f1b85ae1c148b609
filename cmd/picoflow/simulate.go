package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/simulate"
	"github.com/picoflow/picoflow/internal/xray"
)

func simulateCmd() *cobra.Command {
	var (
		kind, out, elements, support string
		size                         int
		sizeMB                       float64
		frames, particles            int
		seed                         uint64
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Write a synthetic Velox EMD file with known ground truth",
		Long: `Write a synthetic Velox EMD file (plus FILE.truth.json with the ground truth):
  --kind si     EDS spectrum image of particles of --elements on a --support film
  --kind movie  HAADF movie (float64 frames) of moving, appearing particles
The paper's sizes: --kind si --size 512 --size-mb 91; --kind movie --size 512 --frames 600 (1.2 GB).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return err
			}
			start := time.Now()
			switch kind {
			case "si":
				var els []string
				for _, e := range strings.Split(elements, ",") {
					if e = xray.Normalize(e); e != "" {
						els = append(els, e)
					}
				}
				spec := simulate.SpectrumImageSpec{Width: size, Height: size, Support: xray.Normalize(support), Elements: els, Particles: particles, Seed: seed,
					CountsPerPixel: simulate.CountsForSize(int64(sizeMB*1e6), size, size)}
				t, err := simulate.WriteSpectrumImage(cmd.Context(), out, spec)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d×%d spectrum image, %d events, elements %s", out, size, size, t.Events, strings.Join(t.Elements, ", "))
			case "movie":
				t, err := simulate.WriteMovie(cmd.Context(), out, simulate.MovieSpec{Frames: frames, Width: size, Height: size, Particles: particles, Seed: seed})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d frames of %d×%d float64, %d particles", out, t.Frames, size, size, len(t.Tracks))
			default:
				return fmt.Errorf("simulate: --kind must be si or movie, not %q", kind)
			}
			fi, err := os.Stat(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), " (%.1f MB in %.1f s)\n", float64(fi.Size())/1e6, time.Since(start).Seconds())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kind, "kind", "si", "si (spectrum image) or movie")
	f.StringVarP(&out, "out", "o", "sim.emd", "output file")
	f.StringVar(&elements, "elements", "Au,Fe,Cu", "particle elements (si)")
	f.StringVar(&support, "support", "C", "support film element (si)")
	f.IntVar(&size, "size", 256, "image width and height in pixels")
	f.Float64Var(&sizeMB, "size-mb", 10, "approximate file size in MB (si)")
	f.IntVar(&frames, "frames", 100, "frames (movie)")
	f.IntVar(&particles, "particles", 12, "number of particles")
	f.Uint64Var(&seed, "seed", 1, "random seed")
	return cmd
}

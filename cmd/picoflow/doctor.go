package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/upload/tusserver"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL reachability
)

// check is one thing a feature needs.
type check struct {
	Feature string // what needs it
	Need    string // what is checked
	OK      bool
	Detail  string // the version found, or what is wrong
	Fix     string // how to install or repair it
	// Required: without it the server does not work at all; the others
	// switch one feature off.
	Required bool
}

// doctorChecks looks at what each feature needs on this machine.
func doctorChecks(ctx context.Context, data, db string) []check {
	var out []check
	look := func(feature, bin, fix string) (string, bool) {
		p, err := exec.LookPath(bin)
		c := check{Feature: feature, Need: bin, OK: err == nil, Fix: fix}
		if err != nil {
			c.Detail = "not on PATH"
		} else {
			c.Detail = p
		}
		out = append(out, c)
		return p, err == nil
	}
	// Movies: ffmpeg and its H.264 encoder.
	if p, ok := look("movies (MP4 videos)", "ffmpeg", "apt-get install ffmpeg"); ok {
		b, err := exec.CommandContext(ctx, p, "-hide_banner", "-encoders").Output()
		enc := check{Feature: "movies (MP4 videos)", Need: "ffmpeg's H.264 encoder (libx264)", Fix: "apt-get install ffmpeg (Debian's build has libx264)"}
		enc.OK = err == nil && strings.Contains(string(b), "libx264")
		if enc.OK {
			enc.Detail = "libx264"
		} else {
			enc.Detail = "ffmpeg has no libx264 encoder"
		}
		out = append(out, enc)
	}
	// The YOLO detector: ONNX Runtime.
	ort := check{Feature: "movies with --model (YOLO)", Need: "ONNX Runtime (ONNXRUNTIME_LIB)", Fix: "make ort (fetches it from the npm package onnxruntime-node) and export ONNXRUNTIME_LIB"}
	if lib := os.Getenv("ONNXRUNTIME_LIB"); lib == "" {
		ort.Detail = "ONNXRUNTIME_LIB is not set"
	} else if _, err := os.Stat(lib); err != nil {
		ort.Detail = err.Error()
	} else {
		ort.OK, ort.Detail = true, lib
	}
	out = append(out, ort)
	// Batch systems for --provider.
	for _, b := range []string{"sbatch", "squeue", "scancel"} {
		look("--provider slurm", b, "apt-get install slurm-wlm (and a running slurmctld)")
	}
	for _, b := range []string{"qsub", "qstat", "qdel"} {
		look("--provider pbs", b, "install OpenPBS or Torque (not in Debian)")
	}
	// PostgreSQL for several replicas.
	if db != "" {
		c := check{Feature: "--db (replicas)", Need: "PostgreSQL reachable", Fix: "check the URL, the server and pg_hba.conf"}
		conn, err := sql.Open("pgx", db)
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = conn.PingContext(pctx)
			cancel()
			conn.Close()
		}
		c.OK = err == nil
		c.Detail = "answers"
		if err != nil {
			c.Detail = err.Error()
		}
		out = append(out, c)
	}
	// Disk and clock.
	disk := check{Feature: "server", Need: "free disk in --data (1 GiB at least)", Fix: "free space or point --data elsewhere", Required: true}
	dir := data
	for dir != "" {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		dir = filepath.Dir(dir)
		if dir == "." || dir == "/" {
			break
		}
	}
	if free := tusserver.FreeSpace(dir); free < 0 {
		disk.Detail = "cannot tell the free space of " + dir
	} else {
		disk.OK = free >= 1<<30
		disk.Detail = fmt.Sprintf("%.1f GB free in %s", float64(free)/1e9, dir)
	}
	out = append(out, disk)
	clock := check{Feature: "records and runs", Need: "a synchronised clock", Fix: "enable NTP (timedatectl set-ntp true, or chrony)"}
	if b, err := exec.CommandContext(ctx, "timedatectl", "show", "-p", "NTPSynchronized", "--value").Output(); err == nil {
		clock.OK = strings.TrimSpace(string(b)) == "yes"
		clock.Detail = "NTPSynchronized=" + strings.TrimSpace(string(b))
	} else {
		clock.OK, clock.Detail = true, "not checked here (no timedatectl): "+time.Now().UTC().Format(time.RFC3339)
	}
	out = append(out, clock)
	return out
}

func printChecks(w io.Writer, cs []check) (missing int) {
	for _, c := range cs {
		mark := "ok     "
		switch {
		case !c.OK && c.Required:
			mark, missing = "MISSING", missing+1
		case !c.OK:
			mark = "absent " // that feature is off
		}
		fmt.Fprintf(w, "%s  %-28s %-40s %s\n", mark, c.Feature, c.Need, c.Detail)
		if !c.OK {
			fmt.Fprintf(w, "         %-28s %-40s fix: %s\n", "", "", c.Fix)
		}
	}
	return missing
}

func doctorCmd() *cobra.Command {
	var data, db string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check what each feature needs on this machine and say how to install what is missing",
		Long: `Check what each feature needs: ffmpeg and its H.264 encoder (movies), ONNX Runtime
(YOLO detection), Slurm or PBS commands (--provider), PostgreSQL (--db), free disk
in --data, a synchronised clock. "absent" switches one feature off; exits 1 only
when something every server needs is missing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n := printChecks(cmd.OutOrStdout(), doctorChecks(cmd.Context(), data, db)); n > 0 {
				return fmt.Errorf("%d required part(s) missing", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&data, "data", "picoflow-data", "server data directory")
	cmd.Flags().StringVar(&db, "db", os.Getenv("PICOFLOW_DB"), "PostgreSQL URL to check")
	return cmd
}

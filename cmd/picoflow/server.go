package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/sandbox"
	"github.com/picoflow/picoflow/internal/server"
)

func serverCmd(workers *sandbox.Registry) *cobra.Command {
	var data, addr, flowsPath, catalogURL, model, ortLib string
	var public bool
	var memMB uint64
	var analyses int
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the facility server: ingest, flows, analysis, catalog and API",
		Long: `Run the facility server. Everything lives in --data: the SQLite database
(flows, catalog, tokens), uploads, the raw files and the analysis products.
Create tokens for agents and people with 'picoflow token create'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := server.Config{DataDir: data, Addr: addr, Workers: workers, AnalysisMemory: memMB << 20, AnalysisWorkers: analyses, CatalogURL: catalogURL, Model: model, ORTLibrary: ortLib,
				Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
			if flowsPath != "" {
				f, err := flow.LoadConfig(flowsPath)
				if err != nil {
					return err
				}
				cfg.Flows = &f
			}
			if public {
				cfg.VisibleTo = []string{catalog.Public}
			}
			srv, err := server.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if err := srv.Start(cmd.Context()); err != nil {
				srv.Stop(context.Background())
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "picoflow server on %s (data %s)\n", srv.URL(), data)
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return srv.Stop(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "picoflow-data", "data directory")
	f.StringVar(&addr, "addr", "127.0.0.1:8470", "listen address")
	f.StringVar(&flowsPath, "flows", "", "flow definitions (YAML; default: the built-in flows)")
	f.StringVar(&catalogURL, "catalog", os.Getenv("PICOFLOW_CATALOG"), "PostgreSQL URL for the catalog (default: the embedded SQLite database)")
	f.StringVar(&model, "model", "", "YOLOv8-format ONNX model for particle detection in movies (default: the classical detector)")
	f.StringVar(&ortLib, "onnxruntime", "", "libonnxruntime.so (default $ONNXRUNTIME_LIB)")
	f.BoolVar(&public, "public", false, "publish records to everyone (default: admins only)")
	f.Uint64Var(&memMB, "analysis-memory-mb", sandbox.DefaultMemory>>20, "memory limit of one analysis worker process (MiB)")
	f.IntVar(&analyses, "analysis-workers", 2, "analyses run at once")
	return cmd
}

package main

import (
	"cmp"
	"context"
	"fmt"
	"github.com/picoflow/picoflow/internal/configfile"
	"github.com/picoflow/picoflow/internal/logging"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/command"
	"github.com/picoflow/picoflow/internal/compute"
	"github.com/picoflow/picoflow/internal/compute/local"
	"github.com/picoflow/picoflow/internal/compute/pbs"
	"github.com/picoflow/picoflow/internal/compute/slurm"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/portal"
	"github.com/picoflow/picoflow/internal/replicas"
	"github.com/picoflow/picoflow/internal/sandbox"
	"github.com/picoflow/picoflow/internal/server"
)

func serverCmd(workers *sandbox.Registry) *cobra.Command {
	var data, addr, flowsPath, catalogURL, model, ortLib, dbURL string
	var public bool
	var blocks blockConfig
	var commands []string
	var cmdMemMB uint64
	var rescueAfter time.Duration
	var tlsCert, tlsKey string
	var oidc portal.OIDCConfig
	var memMB uint64
	var analyses int
	var trusted []string
	var replaceFlows bool
	var metricsAddr string
	var minFreeMB uint64
	var uploadExpiry time.Duration
	var cfgFile string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the facility server: ingest, flows, analysis, catalog and API",
		Long: `Run the facility server. Everything lives in --data: the SQLite database
(flows, catalog, tokens), uploads, the raw files and the analysis products.
Create tokens for agents and people with 'picoflow token create'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgFile != "" {
				if err := configfile.Apply(cmd.Flags(), cfgFile); err != nil {
					return err
				}
			}
			cfg := server.Config{DataDir: data, Addr: addr, Workers: workers, AnalysisMemory: memMB << 20, AnalysisWorkers: analyses, CatalogURL: catalogURL, Model: model, ORTLibrary: ortLib, DatabaseURL: dbURL, RescueAfter: rescueAfter,
				Logger: logging.New(slog.LevelInfo), MetricsAddr: metricsAddr, MinFree: int64(minFreeMB << 20), UploadExpiry: uploadExpiry}
			for _, p := range trusted {
				pfx, err := netip.ParsePrefix(p)
				if err != nil {
					a, aerr := netip.ParseAddr(p)
					if aerr != nil {
						return fmt.Errorf("--trusted-proxy %q: want an address or a prefix (10.0.0.0/8)", p)
					}
					pfx = netip.PrefixFrom(a, a.BitLen())
				}
				cfg.TrustedProxies = append(cfg.TrustedProxies, pfx)
			}
			if flowsPath != "" {
				f, err := flow.LoadConfig(flowsPath)
				if err != nil {
					return err
				}
				if !replaceFlows {
					f = flow.Merge(flow.DefaultConfig(), f)
				}
				cfg.Flows = &f
			}
			if public {
				cfg.VisibleTo = []string{catalog.Public}
			}
			var err error
			if cfg.Commands, err = command.Parse(commands); err != nil {
				return fmt.Errorf("server: %w", err)
			}
			cfg.CommandMemory = cmdMemMB << 20
			blocks.CommandMemMB = cmdMemMB
			cfg.TLSCert, cfg.TLSKey = tlsCert, tlsKey
			if oidc.Issuer != "" {
				oidc.ClientSecret = os.Getenv("PICOFLOW_OIDC_SECRET")
				cfg.OIDC = &oidc
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
			// Say at start what the configured features lack (picoflow doctor).
			for _, c := range doctorChecks(cmd.Context(), data, "") {
				used := c.Feature == "movies (MP4 videos)" || c.Required ||
					(c.Feature == "movies with --model (YOLO)" && model != "") ||
					(c.Feature == "--provider slurm" && blocks.Provider == "slurm") || (c.Feature == "--provider pbs" && blocks.Provider == "pbs")
				if used && !c.OK {
					cfg.Logger.Warn("missing: "+c.Need, "feature", c.Feature, "detail", c.Detail, "fix", c.Fix)
				}
			}
			if blocks.Provider != "" {
				blocks.Data = data
				sc, err := blockScaler(cmd.Context(), srv, blocks)
				if err != nil {
					srv.Stop(context.Background())
					return err
				}
				defer sc.Stop()
			}
			<-cmd.Context().Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return srv.Stop(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "YAML file of settings: each key a flag's name (data: /srv/picoflow, flows: flows.yaml, command: [...]); flags given here win")
	f.StringVar(&data, "data", "picoflow-data", "data directory")
	f.StringVar(&addr, "addr", "127.0.0.1:8470", "listen address")
	f.StringVar(&flowsPath, "flows", "", "flow definitions (YAML): added to the built-in flows, replacing those of the same name")
	f.BoolVar(&replaceFlows, "replace-flows", false, "with --flows: use only the file's flows, none of the built-in ones")
	f.StringVar(&dbURL, "db", os.Getenv("PICOFLOW_DB"), "PostgreSQL URL for flows, tasks, accounts and the catalog, shared by several servers (default: the SQLite file in --data)")
	f.DurationVar(&rescueAfter, "rescue-after", 0, "with --db: re-run a step that has run this long on a server that died (default: longest step timeout + 1m)")
	f.StringVar(&catalogURL, "catalog", os.Getenv("PICOFLOW_CATALOG"), "PostgreSQL URL for the catalog (default: the embedded SQLite database)")
	f.StringVar(&model, "model", "", "YOLOv8-format ONNX model for particle detection in movies (default: the classical detector)")
	f.StringVar(&ortLib, "onnxruntime", "", "libonnxruntime.so (default $ONNXRUNTIME_LIB)")
	f.StringVar(&blocks.Provider, "provider", "", "start endpoint blocks for the hpc flow: local, slurm or pbs (default: none; endpoints are started by hand)")
	f.StringVar(&blocks.Partition, "partition", "", "Slurm partition or PBS queue of the blocks")
	f.IntVar(&blocks.Min, "min-blocks", 0, "blocks kept running without work")
	f.IntVar(&blocks.Max, "max-blocks", 2, "most blocks at once")
	f.DurationVar(&blocks.Idle, "block-idle", 5*time.Minute, "a block's endpoint exits after this long without work")
	f.StringArrayVar(&blocks.Commands, "block-command", nil, "NAME=COMMAND LINE for the blocks' endpoints (steps of type command with where: endpoint; repeatable)")
	f.StringVar(&blocks.Servers, "block-server", "", "server URL(s) the blocks' endpoints connect to, comma-separated (default: this server's; with replicas, list them all or a load balancer)")
	f.StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	f.StringVar(&tlsKey, "tls-key", "", "the certificate's key (PEM)")
	f.StringVar(&oidc.Issuer, "oidc-issuer", "", "OpenID Connect issuer URL for portal sign-in (client secret: PICOFLOW_OIDC_SECRET)")
	f.StringVar(&oidc.ClientID, "oidc-client-id", "", "OIDC client ID")
	f.StringVar(&oidc.RedirectURL, "oidc-redirect-url", "", "this portal's /auth/callback URL as the provider sees it")
	f.StringVar(&oidc.Name, "oidc-name", "single sign-on", "provider name on the sign-in button")
	f.StringVar(&oidc.GroupsClaim, "oidc-groups-claim", "groups", "ID-token claim listing the user's groups")
	f.StringSliceVar(&oidc.AdminGroups, "oidc-admin-group", nil, "provider groups whose members are administrators")
	f.BoolVar(&public, "public", false, "publish records to everyone (default: admins only)")
	f.StringSliceVar(&trusted, "trusted-proxy", nil, "reverse proxies (addresses or prefixes) whose X-Forwarded-Host/-Proto are believed (default: none)")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics without authentication on this address only, e.g. a private network's (default: on --addr, for tokens with role:metrics or role:admin)")
	f.Uint64Var(&minFreeMB, "min-free-mb", 1024, "refuse uploads (507) that would leave less free disk space than this (MiB)")
	f.DurationVar(&uploadExpiry, "upload-expiry", 7*24*time.Hour, "remove unfinished uploads nobody wrote to for this long")
	f.Uint64Var(&memMB, "analysis-memory-mb", sandbox.DefaultMemory>>20, "memory limit of one analysis worker process (MiB)")
	f.IntVar(&analyses, "analysis-workers", 2, "analyses run at once")
	f.Uint64Var(&cmdMemMB, "command-memory-mb", 0, "address-space cap of each command here and on the blocks (MiB; 0: none; Linux, via prlimit; not for Java or CUDA programs)")
	f.StringArrayVar(&commands, "command", nil, "NAME=COMMAND LINE that flow steps of type command (where: server) may run; {input}, {output}, {name}, {run} are replaced (repeatable)")
	return cmd
}

// blockConfig is how the server starts endpoint blocks.
type blockConfig struct {
	Provider, Partition string
	Min, Max            int
	Idle                time.Duration
	// Servers are what the blocks' endpoints connect to (default: this
	// server's URL).
	Servers string
	// Commands are the blocks' endpoints' commands (NAME=ARGV), each
	// capped at CommandMemMB of address space (0: none).
	Commands     []string
	CommandMemMB uint64
	Data         string
}

// blockScaler starts endpoint blocks on a provider while hpc tasks wait.
func blockScaler(ctx context.Context, srv *server.Server, cfg blockConfig) (*compute.Scaler, error) {
	var p compute.Provider
	switch cfg.Provider {
	case "local":
		p = local.New()
	case "slurm":
		p = &slurm.Provider{Partition: cfg.Partition}
	case "pbs":
		p = &pbs.Provider{Queue: cfg.Partition}
	default:
		return nil, fmt.Errorf("server: --provider must be local, slurm or pbs, not %q", cfg.Provider)
	}
	servers := cmp.Or(cfg.Servers, srv.URL())
	if _, err := replicas.Parse(servers); err != nil {
		return nil, fmt.Errorf("server: --block-server: %w", err)
	}
	if _, err := command.Parse(cfg.Commands); err != nil {
		return nil, fmt.Errorf("server: --block-command: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	token, err := srv.Tokens.Create(ctx, "endpoint blocks", "endpoint:blocks", auth.RoleEndpoint)
	if err != nil {
		return nil, err
	}
	dir, _ := filepath.Abs(filepath.Join(cfg.Data, "blocks"))
	sc := &compute.Scaler{Queue: srv.Tasks(), Provider: p, Min: cfg.Min, Max: cfg.Max, Logger: slog.Default(),
		SpecFunc: func(name string) compute.BlockSpec {
			argv := []string{exe, "endpoint", "--server", servers, "--name", name, "--exit-when-idle", cfg.Idle.String()}
			for _, c := range cfg.Commands {
				argv = append(argv, "--command", c)
			}
			if cfg.CommandMemMB > 0 {
				argv = append(argv, "--command-memory-mb", strconv.FormatUint(cfg.CommandMemMB, 10))
			}
			return compute.BlockSpec{Name: name, Dir: dir, Env: []string{"PICOFLOW_TOKEN=" + token}, Command: argv}
		}}
	srv.AttachScaler(sc)
	// One replica scales the blocks at a time; another takes over when it
	// stops or its database session fails.
	go srv.Exclusive(ctx, "block scaler", func(ctx context.Context) {
		slog.Info("this server scales the endpoint blocks", "provider", cfg.Provider, "max_blocks", cfg.Max, "servers", servers)
		if err := sc.Start(ctx); err != nil {
			slog.Error("block scaler", "error", err)
			return
		}
		<-ctx.Done()
		sc.Stop()
	})
	return sc, nil
}

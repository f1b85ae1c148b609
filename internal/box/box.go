// Package box runs the whole system in one process: a server with its own
// data directory, an agent token, and an agent watching instrument folders.
// It is what `picoflow demo` and the end-to-end tests start.
package box

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/picoflow/picoflow/internal/agent"
	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/command"
	"github.com/picoflow/picoflow/internal/compute"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/portal"
	"github.com/picoflow/picoflow/internal/sandbox"
	"github.com/picoflow/picoflow/internal/server"
)

// Config configures a Box.
type Config struct {
	// Dir holds server/ (the facility side) and instrument/ (the watched
	// folders and the agent's ledger).
	Dir string
	// Addr is the server's listen address (default 127.0.0.1:0).
	Addr string
	// Settle is the agent's settle time (default 1s).
	Settle time.Duration
	// Public publishes records to everyone (the demo); otherwise records
	// are visible to role:admin.
	Public   bool
	Workers  *sandbox.Registry
	Logger   *slog.Logger
	OnChange func(agent.Entry)
	// PollInterval tunes the flow engine (tests).
	PollInterval time.Duration
	// OIDC optionally configures portal sign-in through a provider.
	OIDC *portal.OIDCConfig
	// CatalogURL optionally keeps the catalog in PostgreSQL.
	CatalogURL string
	// DatabaseURL optionally keeps everything in PostgreSQL.
	DatabaseURL string
	// Endpoints starts this many compute endpoints (for the hpc flow).
	Endpoints int
	// TaskLease is the endpoints' lease (tests shorten it).
	TaskLease time.Duration
	// Flows replaces the built-in flows; each gets an instrument folder
	// named after it (the built-in ones keep theirs).
	Flows *flow.Config
	// Commands are the commands the server and the endpoints may run for
	// steps of type command.
	Commands command.Set
	// RecheckFailed is the agent's period of asking about failed files'
	// runs again (agent.Config).
	RecheckFailed time.Duration
	// Server, when set, adjusts the server's configuration before it
	// starts (tests: limits, metrics address).
	Server func(*server.Config)
}

// Box is a running system.
type Box struct {
	Server *server.Server
	Agent  *agent.Agent
	// AdminToken and AgentToken are API tokens created for this box.
	AdminToken, AgentToken string
	// AdminPassword signs in to the portal as "admin".
	AdminPassword string
	// Folders are the instrument folders by flow name.
	Folders map[string]string
	// Endpoints are the running compute endpoints; EndpointToken is theirs.
	Endpoints     []*compute.Endpoint
	EndpointToken string
	cfg           Config
}

// Start starts the server, creates tokens and starts an agent watching
// instrument/hyperspectral, instrument/movies and instrument/other.
func Start(ctx context.Context, cfg Config) (*Box, error) {
	if cfg.Dir == "" {
		return nil, errors.New("box: no directory")
	}
	log := cmp.Or(cfg.Logger, slog.Default())
	vis := []string{auth.RoleAdmin}
	if cfg.Public {
		vis = []string{catalog.Public}
	}
	scfg := server.Config{
		DataDir: filepath.Join(cfg.Dir, "server"), Addr: cmp.Or(cfg.Addr, "127.0.0.1:0"), VisibleTo: vis,
		Workers: cfg.Workers, Logger: log.With("side", "server"), PollInterval: cfg.PollInterval, OIDC: cfg.OIDC, CatalogURL: cfg.CatalogURL, DatabaseURL: cfg.DatabaseURL, TaskLease: cfg.TaskLease,
		Flows: cfg.Flows, Commands: cfg.Commands,
	}
	if cfg.Server != nil {
		cfg.Server(&scfg)
	}
	srv, err := server.New(ctx, scfg)
	if err != nil {
		return nil, err
	}
	if err := srv.Start(ctx); err != nil {
		srv.Stop(ctx)
		return nil, err
	}
	b := &Box{Server: srv, cfg: cfg, Folders: map[string]string{
		"hyperspectral":  filepath.Join(cfg.Dir, "instrument", "hyperspectral"),
		"spatiotemporal": filepath.Join(cfg.Dir, "instrument", "movies"),
		"emd":            filepath.Join(cfg.Dir, "instrument", "other"),
		"hpc":            filepath.Join(cfg.Dir, "instrument", "hpc"),
	}}
	if cfg.Flows != nil {
		folders := map[string]string{}
		for _, f := range cfg.Flows.Flows {
			folders[f.Name] = cmp.Or(b.Folders[f.Name], filepath.Join(cfg.Dir, "instrument", f.Name))
		}
		b.Folders = folders
	}
	if b.AdminToken, err = srv.Tokens.Create(ctx, "box admin", "user:admin", auth.RoleAdmin); err != nil {
		b.Stop(ctx)
		return nil, fmt.Errorf("box: %w", err)
	}
	b.AdminPassword = b.AdminToken[3:19]
	if err := srv.Accounts.Set(ctx, "admin", b.AdminPassword, auth.RoleAdmin, "group:picoprobe"); err != nil {
		b.Stop(ctx)
		return nil, fmt.Errorf("box: %w", err)
	}
	if b.AgentToken, err = srv.Tokens.Create(ctx, "box agent", "agent:picoprobe-pc", auth.RoleAgent); err != nil {
		b.Stop(ctx)
		return nil, fmt.Errorf("box: %w", err)
	}
	if b.EndpointToken, err = srv.Tokens.Create(ctx, "box endpoints", "endpoint:box", auth.RoleEndpoint); err != nil {
		b.Stop(ctx)
		return nil, fmt.Errorf("box: %w", err)
	}
	for i := range cfg.Endpoints {
		if _, err := b.StartEndpoint(ctx, fmt.Sprintf("hpc-%d", i+1)); err != nil {
			b.Stop(ctx)
			return nil, err
		}
	}
	var folders []agent.Folder
	for flowName, dir := range b.Folders {
		folders = append(folders, agent.Folder{Path: dir, Flow: flowName})
	}
	b.Agent, err = agent.New(ctx, agent.Config{
		Server: srv.URL(), Token: b.AgentToken, Name: "picoprobe-pc", Instrument: "PicoProbe",
		Folders: folders, Ledger: filepath.Join(cfg.Dir, "instrument", "agent.db"),
		Settle: cmp.Or(cfg.Settle, time.Second), Logger: log.With("side", "agent"), OnChange: cfg.OnChange, RecheckFailed: cfg.RecheckFailed,
		NormalPriority: true, // the agent shares this process with the server
	})
	if err != nil {
		b.Stop(ctx)
		return nil, err
	}
	if err := b.Agent.Start(ctx); err != nil {
		b.Agent = nil
		b.Stop(ctx)
		return nil, err
	}
	return b, nil
}

// StartEndpoint starts one more compute endpoint named name.
func (b *Box) StartEndpoint(ctx context.Context, name string) (*compute.Endpoint, error) {
	e := &compute.Endpoint{Server: b.Server.URL(), Token: b.EndpointToken, Name: name, Workers: 1,
		WorkDir: filepath.Join(b.cfg.Dir, "endpoints", name), Run: command.EndpointRun(b.cfg.Commands, 0, analysis.EndpointRun(b.cfg.Workers, sandbox.Limits{})),
		Logger: cmp.Or(b.cfg.Logger, slog.Default()).With("side", name)}
	if err := e.Start(ctx); err != nil {
		return nil, err
	}
	b.Endpoints = append(b.Endpoints, e)
	return e, nil
}

// Stop stops the agent and endpoints, then the server.
func (b *Box) Stop(ctx context.Context) error {
	if b.Agent != nil {
		b.Agent.Stop()
	}
	for _, e := range b.Endpoints {
		e.Stop()
	}
	return b.Server.Stop(ctx)
}

// Package server is the facility side of picoflow in one service: resumable
// ingest (tus), durable flows (River over SQLite), the analysis, the catalog
// and the REST API, with Start/Stop.
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/campaign"
	"github.com/picoflow/picoflow/internal/catalog"
	catpg "github.com/picoflow/picoflow/internal/catalog/postgres"
	catsqlite "github.com/picoflow/picoflow/internal/catalog/sqlite"
	"github.com/picoflow/picoflow/internal/command"
	"github.com/picoflow/picoflow/internal/compute"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/portal"
	"github.com/picoflow/picoflow/internal/sandbox"
	"github.com/picoflow/picoflow/internal/store"
	"github.com/picoflow/picoflow/internal/upload/tusserver"
)

// Config configures a Server.
type Config struct {
	// DataDir holds the database, uploads, raw files and analysis products.
	DataDir string
	// Addr is the listen address (default "127.0.0.1:8470"; port 0 picks one).
	Addr string
	// Flows are the flow definitions (default flow.DefaultConfig()).
	Flows *flow.Config
	// VisibleTo is the access list of published records unless a publish
	// step names one (default: role:admin only).
	VisibleTo []string
	// AnalysisMemory bounds one analysis worker process in bytes (default
	// sandbox.DefaultMemory).
	AnalysisMemory uint64
	// AnalysisWorkers is how many analyses run at once (default 2).
	AnalysisWorkers int
	// Workers runs analyses in child processes; the program must call its
	// Main at start.
	Workers *sandbox.Registry
	Logger  *slog.Logger
	// PollInterval and RetryBase tune the flow engine (see flow.EngineConfig).
	PollInterval, RetryBase time.Duration
	// OIDC, when set, lets people sign in to the portal through an OpenID
	// Connect provider.
	OIDC *portal.OIDCConfig
	// SecureCookies marks cookies Secure (when served over HTTPS; implied
	// by TLSCert).
	SecureCookies bool
	// TLSCert and TLSKey, when set, serve HTTPS.
	TLSCert, TLSKey string
	// RescueAfter is how long a step may stay running before another server
	// re-runs it (its server died); default: the longest step timeout plus
	// a minute.
	RescueAfter time.Duration
	// TaskLease is how long a compute endpoint's claim on a task lasts
	// without a heartbeat (default 1m).
	TaskLease time.Duration
	// Model, when set, is the YOLOv8-format ONNX model movies are analysed
	// with (ORTLibrary: libonnxruntime.so, default $ONNXRUNTIME_LIB).
	Model, ORTLibrary string
	// Commands are the commands flow steps of type command may run on
	// this server (where: server); CommandMemory caps each one's address
	// space in bytes (0: no cap).
	Commands      command.Set
	CommandMemory uint64
	// DatabaseURL, when set (postgres://...), keeps flows, tasks, tokens,
	// accounts and the catalog in PostgreSQL, so several servers can share
	// the work (their DataDirs must then be one shared file system).
	DatabaseURL string
	// CatalogURL, when set, keeps the catalog in PostgreSQL
	// (postgres://...) instead of the embedded SQLite database.
	CatalogURL string
	// TrustedProxies are the reverse proxies whose X-Forwarded-* headers
	// are believed; nobody's by default.
	TrustedProxies []netip.Prefix
	// MinFree is the disk space uploads must leave free (default 1 GiB).
	MinFree int64
	// UploadExpiry is how long an unfinished upload nobody writes to is
	// kept (default 7 days); UploadStall ends a PATCH whose body has not
	// moved for this long (default 2 minutes).
	UploadExpiry, UploadStall time.Duration
	// BodyTimeout bounds reading a request body outside uploads and the
	// endpoint protocol (default 60 s).
	BodyTimeout time.Duration
	// MetricsAddr, when set, serves /metrics there without
	// authentication (for a scraper on a private network) and not on
	// Addr, where it needs a token with role:metrics or role:admin.
	MetricsAddr string
}

// Server is a running facility service.
type Server struct {
	cfg     Config
	log     *slog.Logger
	db      *store.DB
	Engine  *flow.Engine
	Catalog catalog.Index
	// Campaigns re-analyse past records (internal/campaign).
	Campaigns *campaign.Service
	Tokens    *auth.Tokens
	Accounts  *auth.Accounts
	sessions  *auth.Sessions
	portal    *portal.Portal
	uploads   *tusserver.Server
	tasks     *compute.Queue
	metrics   *metrics
	scaler    *compute.Scaler
	stopBg    context.CancelFunc
	http      *http.Server
	// metricsHTTP serves /metrics on Config.MetricsAddr, when set.
	metricsHTTP *http.Server
	closers     []func()
	// unlock releases the SQLite data directory's lock (lockDataDir).
	unlock  func()
	ln      net.Listener
	wg      sync.WaitGroup
	stopped bool
	mu      sync.Mutex
	// hostname names this server in the records it makes (provenance).
	hostname string
}

// Layout of DataDir.
func (s *Server) dbPath() string      { return filepath.Join(s.cfg.DataDir, "picoflow.db") }
func (s *Server) uploadDir() string   { return filepath.Join(s.cfg.DataDir, "uploads") }
func (s *Server) rawDir() string      { return filepath.Join(s.cfg.DataDir, "raw") }
func (s *Server) productsDir() string { return filepath.Join(s.cfg.DataDir, "products") }

// New opens the database and builds the service; Start serves it.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("server: no data directory")
	}
	if cfg.Workers == nil {
		return nil, errors.New("server: no worker registry")
	}
	cfg.Addr = cmp.Or(cfg.Addr, "127.0.0.1:8470")
	if cfg.Flows == nil {
		d := flow.DefaultConfig()
		cfg.Flows = &d
	}
	if len(cfg.VisibleTo) == 0 {
		cfg.VisibleTo = []string{auth.RoleAdmin}
	}
	s := &Server{cfg: cfg, log: cmp.Or(cfg.Logger, slog.Default())}
	s.hostname, _ = os.Hostname()
	s.hostname = cmp.Or(s.hostname, "server")
	for _, d := range []string{cfg.DataDir, s.rawDir(), s.productsDir()} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	var db *store.DB
	var err error
	built := false
	defer func() {
		if built {
			return
		}
		for _, c := range s.closers {
			c()
		}
		if s.unlock != nil {
			s.unlock()
		}
	}()
	if cfg.DatabaseURL != "" {
		db, err = store.OpenPostgres(ctx, cfg.DatabaseURL)
		if cfg.CatalogURL == "" {
			cfg.CatalogURL = cfg.DatabaseURL
		}
	} else {
		unlock, lerr := lockDataDir(cfg.DataDir)
		if lerr != nil {
			return nil, fmt.Errorf("server: %w", lerr)
		}
		s.unlock = unlock
		db, err = store.Open(ctx, s.dbPath())
	}
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.db = db
	s.Tokens = auth.NewTokens(db.Write, db.Read)
	s.Accounts = auth.NewAccounts(db.Write, db.Read)
	s.sessions = auth.NewSessions(db.Write, db.Read)
	s.sessions.Secure = cfg.SecureCookies || cfg.TLSCert != ""
	s.Catalog = catsqlite.New(db.Write, db.Read)
	s.tasks = compute.NewQueue(db.Write, db.Read)
	s.tasks.Postgres = db.Postgres
	if cfg.TaskLease > 0 {
		s.tasks.Lease = cfg.TaskLease
	}
	s.tasks.DoneFunc = s.taskDone
	if cfg.CatalogURL != "" {
		pool, err := pgxpool.New(ctx, cfg.CatalogURL)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("server: catalog: %w", err)
		}
		if s.Catalog, err = catpg.New(ctx, pool); err != nil {
			pool.Close()
			db.Close()
			return nil, fmt.Errorf("server: %w", err)
		}
		s.closers = append(s.closers, pool.Close)
	}
	flows := map[string]bool{}
	for _, f := range cfg.Flows.Flows {
		flows[f.Name] = true
	}
	tc := tusserver.Config{Dir: s.uploadDir(), BasePath: "/files/", Flows: flows, TrustedProxies: cfg.TrustedProxies, MinFree: cfg.MinFree, StallTimeout: cfg.UploadStall,
		Caller: func(ctx context.Context) (string, bool) {
			id := auth.FromContext(ctx)
			if id == nil {
				return "", false
			}
			return id.Subject, id.Has(auth.RoleAdmin)
		},
		MayStart: func(ctx context.Context, name string) error { return s.mayStartFlow(auth.FromContext(ctx), name) },
	}
	if db.Pgx != nil {
		// Replicas share the upload directory: lock uploads in PostgreSQL.
		tc.Locker = tusserver.NewPostgresLocker(db.Pgx)
	}
	s.uploads, err = tusserver.New(tc)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	// (Stop waits for the uploads' background syncs.)
	s.closers = append(s.closers, s.uploads.Close)
	s.Engine, err = flow.New(flow.EngineConfig{
		DB: db, Flows: *cfg.Flows, Types: s.stepTypes(), Logger: s.log,
		Workers:      map[string]int{flow.QueueAnalyze: cmp.Or(cfg.AnalysisWorkers, 2)},
		PollInterval: cfg.PollInterval, RetryBase: cfg.RetryBase, RescueAfter: cfg.RescueAfter,
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	s.Campaigns = campaign.New(campaign.Config{DB: db, Engine: s.Engine, Catalog: s.Catalog, Logger: s.log, RecordKey: RunRecord, ParamsKey: RunParams})
	pcfg := portal.Config{Catalog: s.Catalog, Runs: s.Engine, Campaigns: s.Campaigns, Thumbnail: s.thumbnail, Sessions: s.sessions, Accounts: s.Accounts, Logger: s.log,
		Compute: func(ctx context.Context) ([]compute.EndpointInfo, []compute.Block, error) {
			return s.computeState(ctx, time.Now().Add(-24*time.Hour))
		}}
	if cfg.OIDC != nil {
		if pcfg.OIDC, err = portal.NewOIDC(ctx, *cfg.OIDC, cfg.SecureCookies); err != nil {
			db.Close()
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	if s.portal, err = portal.New(pcfg); err != nil {
		db.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	s.metrics = newMetrics(s)
	// No overall read or write timeout: uploads, event streams and long
	// polls last. Headers must come within 10 s, an idle keep-alive
	// connection closes after 2 minutes, and bodies are bounded per route
	// (limitRequests, the upload server's stall watchdog).
	s.http = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	built = true
	return s, nil
}

// Start starts the flow workers and the HTTP server.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.ln = ln
	if err := s.Engine.Start(ctx); err != nil {
		ln.Close()
		return fmt.Errorf("server: %w", err)
	}
	if err := s.Campaigns.Start(ctx); err != nil {
		ln.Close()
		return fmt.Errorf("server: %w", err)
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopBg = cancel
	s.wg.Go(func() { s.metrics.follow(bg, s) })
	s.wg.Go(func() { s.sweepUploads(bg) })
	if s.db.Pgx != nil {
		s.wg.Go(func() { s.tasks.ListenPostgres(bg, s.db.Pgx) })
	}
	s.wg.Go(func() {
		var err error
		if s.cfg.TLSCert != "" {
			err = s.http.ServeTLS(ln, s.cfg.TLSCert, s.cfg.TLSKey)
		} else {
			err = s.http.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server", "error", err)
		}
	})
	if s.cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", s.cfg.MetricsAddr)
		if err != nil {
			s.Stop(ctx)
			return fmt.Errorf("server: metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.metrics.handler())
		s.metricsHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		s.wg.Go(func() {
			if err := s.metricsHTTP.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("metrics server", "error", err)
			}
		})
		s.log.Info("metrics served without authentication", "addr", mln.Addr().String())
	}
	s.log.Info("server started", "addr", s.URL(), "data", s.cfg.DataDir)
	return nil
}

// sweepUploads removes abandoned uploads and the leftovers of failures,
// at start and then hourly.
func (s *Server) sweepUploads(ctx context.Context) {
	expiry := cmp.Or(s.cfg.UploadExpiry, 7*24*time.Hour)
	for {
		rep, err := s.uploads.Sweep(ctx, expiry)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("sweep uploads", "error", err)
		}
		if len(rep.Expired)+len(rep.Orphans) > 0 {
			s.log.Info("uploads swept", "expired", len(rep.Expired), "orphans", len(rep.Orphans), "after", expiry)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
}

// URL is the base URL the server listens on.
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	if s.cfg.TLSCert != "" {
		return "https://" + s.ln.Addr().String()
	}
	return "http://" + s.ln.Addr().String()
}

// Stop shuts the HTTP server down, lets running steps finish until ctx's
// deadline (they are retried on the next start otherwise), and closes the
// database. It is safe to call more than once.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()
	var errs []error
	if s.ln != nil {
		s.stopBg()
		if err := s.http.Shutdown(ctx); err != nil {
			s.http.Close()
		}
		if s.metricsHTTP != nil {
			s.metricsHTTP.Close()
		}
		s.wg.Wait()
		s.Campaigns.Stop(ctx)
		if err := s.Engine.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range s.closers {
		c()
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, err)
	}
	if s.unlock != nil {
		s.unlock()
	}
	return errors.Join(errs...)
}

// Tasks is the compute task queue (for block scaling).
func (s *Server) Tasks() *compute.Queue { return s.tasks }

// DB exposes the database (for stats and tests).
func (s *Server) DB() *store.DB { return s.db }

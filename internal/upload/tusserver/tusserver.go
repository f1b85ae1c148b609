// Package tusserver mounts the tusd resumable-upload handler on the server:
// uploads land in a directory with a file-backed store (so an interrupted
// upload survives a server restart), metadata is validated when an upload is
// created, and the server's receive time is stamped into it.
package tusserver

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tus/tusd/v2/pkg/filestore"
	"github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	expslog "golang.org/x/exp/slog"

	"github.com/picoflow/picoflow/internal/upload"
)

// ErrNotFound means no such upload.
var ErrNotFound = errors.New("upload not found")

// Upload is what the server knows about one upload.
type Upload struct {
	ID       string
	Size     int64
	Offset   int64
	Meta     map[string]string
	Received time.Time
	// Path is the file holding the uploaded bytes.
	Path string
}

// Complete reports whether every byte has arrived.
func (u *Upload) Complete() bool { return u.Offset == u.Size }

// Server is a mounted tus endpoint.
type Server struct {
	handler *handler.Handler
	store   filestore.FileStore
	locker  handler.Locker
	dir     string
}

// Config configures a Server.
type Config struct {
	// Dir holds the uploads (created if needed).
	Dir string
	// BasePath is the URL path the handler is mounted at, e.g. "/files/".
	BasePath string
	// MaxSize bounds one upload in bytes (0: 1 TiB).
	MaxSize int64
	// Flows, when not nil, lists the flow names an upload may ask for.
	Flows map[string]bool
	// Locker serialises writes to one upload. Nil: an in-memory lock, right
	// when one server owns Dir; servers sharing Dir (replicas on one
	// PostgreSQL database) need a PostgresLocker.
	Locker handler.Locker
}

// New creates the upload directory and the handler.
func New(cfg Config) (*Server, error) {
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("upload server: %w", err)
	}
	store := filestore.New(cfg.Dir)
	composer := handler.NewStoreComposer()
	store.UseIn(composer)
	// One server process serves the uploads unless told otherwise: an
	// in-memory lock, which leaves no stale lock files after a crash.
	var locker handler.Locker = memorylocker.New()
	if cfg.Locker != nil {
		locker = cfg.Locker
	}
	composer.UseLocker(locker)
	maxSize := cfg.MaxSize
	if maxSize <= 0 {
		maxSize = 1 << 40
	}
	h, err := handler.NewHandler(handler.Config{
		BasePath:                cfg.BasePath,
		StoreComposer:           composer,
		MaxSize:                 maxSize,
		DisableDownload:         true,
		DisableConcatenation:    true,
		RespectForwardedHeaders: true,
		// tusd logs through golang.org/x/exp/slog; keep its warnings only.
		Logger: expslog.New(expslog.NewTextHandler(os.Stderr, &expslog.HandlerOptions{Level: expslog.LevelWarn})),
		PreUploadCreateCallback: func(hook handler.HookEvent) (handler.HTTPResponse, handler.FileInfoChanges, error) {
			meta := hook.Upload.MetaData
			if err := validate(meta, hook.Upload.SizeIsDeferred, cfg.Flows); err != nil {
				return handler.HTTPResponse{}, handler.FileInfoChanges{}, handler.NewError("ERR_INVALID_METADATA", err.Error(), http.StatusBadRequest)
			}
			changed := handler.MetaData{}
			for k, v := range meta {
				changed[k] = v
			}
			changed[upload.MetaReceivedAt] = time.Now().UTC().Format(time.RFC3339Nano)
			return handler.HTTPResponse{}, handler.FileInfoChanges{MetaData: changed}, nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("upload server: %w", err)
	}
	return &Server{handler: h, store: store, locker: locker, dir: cfg.Dir}, nil
}

// validate checks an upload's metadata before any byte is stored.
func validate(meta handler.MetaData, deferred bool, flows map[string]bool) error {
	if deferred {
		return errors.New("the upload length must be declared")
	}
	name := meta[upload.MetaFilename]
	if name == "" || len(name) > 255 || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
		return fmt.Errorf("filename %q: need a plain file name of 1-255 characters", name)
	}
	sum := meta[upload.MetaSHA256]
	if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 || strings.ToLower(sum) != sum {
		return fmt.Errorf("sha256 %q: need 64 lowercase hex digits", sum)
	}
	if flows != nil && !flows[meta[upload.MetaFlow]] {
		return fmt.Errorf("flow %q is not configured on this server", meta[upload.MetaFlow])
	}
	return nil
}

// Handler serves the tus protocol; mount it at the configured BasePath
// (stripped). PATCH requests over HTTP/1.1 take a zero-copy path (see
// patch); everything else is tusd's.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && r.ProtoMajor == 1 {
			if _, ok := w.(http.Hijacker); ok {
				s.patch(w, r)
				return
			}
		}
		s.handler.ServeHTTP(w, r)
	})
}

// Get returns an upload's state.
func (s *Server) Get(ctx context.Context, id string) (*Upload, error) {
	if id == "" || strings.ContainsAny(id, "/\\.") {
		return nil, fmt.Errorf("upload %q: %w", id, ErrNotFound)
	}
	up, err := s.store.GetUpload(ctx, id)
	if err != nil {
		if errors.Is(err, handler.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("upload %s: %w", id, ErrNotFound)
		}
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	info, err := up.GetInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	u := &Upload{ID: id, Size: info.Size, Offset: info.Offset, Meta: map[string]string(info.MetaData), Path: info.Storage["Path"]}
	if u.Path == "" {
		u.Path = filepath.Join(s.dir, id)
	}
	u.Received, _ = time.Parse(time.RFC3339Nano, u.Meta[upload.MetaReceivedAt])
	return u, nil
}

// Remove deletes an upload's bookkeeping files (after its data was moved).
func (s *Server) Remove(id string) error {
	if id == "" || strings.ContainsAny(id, "/\\.") {
		return fmt.Errorf("upload %q: %w", id, ErrNotFound)
	}
	for _, p := range []string{filepath.Join(s.dir, id), filepath.Join(s.dir, id+".info"), filepath.Join(s.dir, id+".lock"), s.digestPath(id), s.digestPath(id) + ".tmp"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove upload %s: %w", id, err)
		}
	}
	return nil
}

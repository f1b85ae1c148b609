// Package tusserver mounts the tusd resumable-upload handler on the server:
// uploads land in a directory with a file-backed store (so an interrupted
// upload survives a server restart), metadata is validated when an upload is
// created, and the server's receive time is stamped into it.
package tusserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

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
	// Partial is a part of a file sent in parallel streams (never a file
	// of its own); Final is a file made of such parts.
	Partial, Final bool
}

// Complete reports whether every byte has arrived.
func (u *Upload) Complete() bool { return u.Offset == u.Size }

// Server is a mounted tus endpoint.
type Server struct {
	handler *handler.Handler
	store   filestore.FileStore
	locker  handler.Locker
	dir     string
	cfg     Config
	// pending are the background syncs of journalled PATCHes.
	pending pendingSyncs
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
	// Caller, when set, names who makes a request (the token's subject)
	// and whether they may touch every upload (an administrator). The
	// creator is stamped into the upload's metadata (upload.MetaOwner, a
	// client's own value is replaced) and only the creator may read, write
	// or delete it; others get 404. Nil: no ownership (tests).
	Caller func(ctx context.Context) (subject string, admin bool)
	// MayStart, when set, refuses an upload for a flow the caller may not
	// start (403).
	MayStart func(ctx context.Context, flow string) error
	// TrustedProxies are the addresses whose X-Forwarded-* and Forwarded
	// headers are believed (they shape the Location of new uploads); the
	// headers of anyone else are dropped.
	TrustedProxies []netip.Prefix
	// MinFree is the free space an upload must leave on Dir's file system
	// (default 1 GiB); an upload that does not fit is refused with 507.
	MinFree int64
	// StallTimeout ends a PATCH whose body has not moved for this long
	// (default 2 minutes), releasing its upload for a resume.
	StallTimeout time.Duration
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
	s := &Server{store: store, locker: locker, dir: cfg.Dir, cfg: cfg}
	composer.UseConcater(concater{s})
	h, err := handler.NewHandler(handler.Config{
		BasePath:                cfg.BasePath,
		StoreComposer:           composer,
		MaxSize:                 maxSize,
		DisableDownload:         true,
		RespectForwardedHeaders: true,
		// tusd logs through golang.org/x/exp/slog; keep its warnings only.
		Logger: expslog.New(expslog.NewTextHandler(os.Stderr, &expslog.HandlerOptions{Level: expslog.LevelWarn})),
		PreUploadCreateCallback: func(hook handler.HookEvent) (handler.HTTPResponse, handler.FileInfoChanges, error) {
			meta := hook.Upload.MetaData
			if err := validate(meta, hook.Upload.SizeIsDeferred, cfg.Flows); err != nil {
				return handler.HTTPResponse{}, handler.FileInfoChanges{}, handler.NewError("ERR_INVALID_METADATA", err.Error(), http.StatusBadRequest)
			}
			if err := s.checkPart(hook.Context, hook.Upload); err != nil {
				return handler.HTTPResponse{}, handler.FileInfoChanges{}, err
			}
			if hook.Upload.IsFinal {
				if err := s.checkFinal(hook.Context, hook.Upload.PartialUploads); err != nil {
					return handler.HTTPResponse{}, handler.FileInfoChanges{}, err
				}
			}
			if cfg.MayStart != nil {
				if err := cfg.MayStart(hook.Context, meta[upload.MetaFlow]); err != nil {
					return handler.HTTPResponse{}, handler.FileInfoChanges{}, handler.NewError("ERR_FLOW_NOT_ALLOWED", err.Error(), http.StatusForbidden)
				}
			}
			if err := checkSpace(cfg.Dir, hook.Upload.Size, cmp.Or(cfg.MinFree, 1<<30)); err != nil {
				slog.Warn("upload refused", "file", meta[upload.MetaFilename], "bytes", hook.Upload.Size, "error", err)
				return handler.HTTPResponse{}, handler.FileInfoChanges{}, handler.NewError("ERR_DISK_FULL", err.Error(), http.StatusInsufficientStorage)
			}
			changed := handler.MetaData{}
			for k, v := range meta {
				changed[k] = v
			}
			delete(changed, upload.MetaOwner)
			if cfg.Caller != nil {
				subject, _ := cfg.Caller(hook.Context)
				changed[upload.MetaOwner] = subject
			}
			changed[upload.MetaReceivedAt] = time.Now().UTC().Format(time.RFC3339Nano)
			return handler.HTTPResponse{}, handler.FileInfoChanges{MetaData: changed}, nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("upload server: %w", err)
	}
	s.handler = h
	// What a power cut left unsynced is put back before anyone reads it.
	// A journal that cannot be replayed stays, and reading its upload
	// says why (the server serves the others).
	if err := s.replayAll(); err != nil {
		slog.Error("upload server: journal not replayed", "error", err)
	}
	return s, nil
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
	if !upload.ValidSHA256(sum) {
		return fmt.Errorf("sha256 %q: need 64 lowercase hex digits", sum)
	}
	if flows != nil && !flows[meta[upload.MetaFlow]] {
		return fmt.Errorf("flow %q is not configured on this server", meta[upload.MetaFlow])
	}
	// What describes the experiment stays short, and text.
	for k, n := range map[string]int{upload.MetaProposal: 200, upload.MetaSample: 200, upload.MetaOperator: 200, upload.MetaLicense: 200,
		upload.MetaDescription: 4000, upload.MetaKeywords: 8000, upload.MetaInstrument: 200, upload.MetaDerivedFrom: 64} {
		if v := meta[k]; utf8.RuneCountInString(v) > n || strings.ContainsRune(v, 0) || !utf8.ValidString(v) {
			return fmt.Errorf("%s: at most %d characters of text", k, n)
		}
	}
	return nil
}

// Handler serves the tus protocol; mount it at the configured BasePath
// (stripped). PATCH requests over HTTP/1.1 take a zero-copy path, and
// compressed ones a decoding path, on any protocol (see patch);
// everything else is tusd's.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(upload.HeaderAcceptEncoding, "zstd")
		w.Header().Set(upload.HeaderCreateWithBody, "zstd")
		if !s.trusted(r.RemoteAddr) {
			for _, h := range []string{"X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-For", "Forwarded"} {
				r.Header.Del(h)
			}
		}
		if r.Method != http.MethodPost && r.Method != http.MethodOptions && !s.mayTouch(r) {
			w.Header().Set("Tus-Resumable", "1.0.0")
			http.Error(w, "upload not found", http.StatusNotFound)
			return
		}
		if r.Method == http.MethodPost && s.postFinal(w, r) {
			return
		}
		if r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/offset+octet-stream" {
			s.createWithBody(w, r)
			return
		}
		if r.Method == http.MethodPatch {
			s.patch(w, r)
			return
		}
		s.handler.ServeHTTP(w, r)
	})
}

// trusted reports whether addr is one of the configured proxies.
func (s *Server) trusted(addr string) bool {
	if len(s.cfg.TrustedProxies) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false
	}
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// mayTouch reports whether the caller of r created the upload it names
// (or is an administrator). An upload that does not exist passes: the
// handler answers 404 itself.
func (s *Server) mayTouch(r *http.Request) bool {
	if s.cfg.Caller == nil {
		return true
	}
	up, err := s.Get(r.Context(), strings.Trim(r.URL.Path, "/"))
	if err != nil {
		return errors.Is(err, ErrNotFound)
	}
	return s.callerOwns(r.Context(), up.Meta[upload.MetaOwner])
}

// callerOwns reports whether the caller is owner, the subject that
// created an upload (or an administrator).
func (s *Server) callerOwns(ctx context.Context, owner string) bool {
	if s.cfg.Caller == nil {
		return true
	}
	subject, admin := s.cfg.Caller(ctx)
	return admin || subject != "" && owner == subject
}

// Get returns an upload's state.
func (s *Server) Get(ctx context.Context, id string) (*Upload, error) {
	if id == "" || strings.ContainsAny(id, "/\\.") {
		return nil, fmt.Errorf("upload %q: %w", id, ErrNotFound)
	}
	if err := s.settled(id); err != nil {
		return nil, err
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
	u := &Upload{ID: id, Size: info.Size, Offset: info.Offset, Meta: map[string]string(info.MetaData), Path: s.pathOf(info),
		Partial: info.IsPartial, Final: info.IsFinal}
	u.Received, _ = time.Parse(time.RFC3339Nano, u.Meta[upload.MetaReceivedAt])
	return u, nil
}

// Remove deletes an upload's bookkeeping files (after its data was moved),
// and the parts a final upload was made of.
func (s *Server) Remove(id string) error {
	if id == "" || strings.ContainsAny(id, "/\\.") {
		return fmt.Errorf("upload %q: %w", id, ErrNotFound)
	}
	s.settled(id) // (a sync still writing must not find the files gone)
	return errors.Join(s.removeParts(id), s.removeFiles(id))
}

func (s *Server) removeFiles(id string) error {
	for _, p := range []string{filepath.Join(s.dir, id), filepath.Join(s.dir, id+".info"), filepath.Join(s.dir, id+".lock"), s.digestPath(id), s.digestPath(id) + ".tmp", filepath.Join(s.dir, id+".whole"), s.journalPath(id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove upload %s: %w", id, err)
		}
	}
	return nil
}

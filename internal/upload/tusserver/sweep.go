package tusserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SweepReport says what a sweep removed.
type SweepReport struct {
	// Expired are unfinished uploads nobody wrote to for the expiry time.
	Expired []string
	// Orphans are leftovers of failures: bookkeeping (.info, .sha256,
	// .lock, .tmp, .whole, .journal) without its upload, or an empty data file
	// without its .info.
	Orphans []string
}

// Sweep removes uploads that were abandoned: unfinished and untouched for
// expireAfter, or a finished part of a parallel upload whose final upload
// was never made. A finished upload is never removed here (its run may
// still be started), nor is anything younger than expireAfter (a .info being
// written, an upload being resumed). Leftovers of failures older than an
// hour are removed too.
func (s *Server) Sweep(ctx context.Context, expireAfter time.Duration) (SweepReport, error) {
	var rep SweepReport
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return rep, fmt.Errorf("sweep uploads: %w", err)
	}
	names := map[string]fs.DirEntry{}
	for _, e := range entries {
		names[e.Name()] = e
	}
	now := time.Now()
	old := func(e fs.DirEntry, d time.Duration) bool {
		fi, err := e.Info()
		return err == nil && now.Sub(fi.ModTime()) > d
	}
	for name, e := range names {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if e.IsDir() {
			continue
		}
		if id, ok := strings.CutSuffix(name, ".info"); ok {
			data, hasData := names[id]
			if !hasData {
				if old(e, time.Hour) {
					s.removeOrphan(&rep, name)
				}
				continue
			}
			up, err := s.Get(ctx, id)
			if err != nil || !old(e, expireAfter) || !old(data, expireAfter) {
				continue
			}
			if up.Complete() {
				// A finished file waits for its run; a finished part
				// only for a final that was never made of it.
				if _, err := os.Stat(s.finalMark(id)); !up.Partial || err == nil {
					continue
				}
			}
			if err := s.Remove(id); err != nil {
				slog.Warn("sweep uploads", "upload", id, "error", err)
				continue
			}
			slog.Info("abandoned upload removed", "upload", id, "bytes", up.Offset, "of", up.Size, "file", up.Meta["filename"])
			rep.Expired = append(rep.Expired, id)
			continue
		}
		var id string
		for _, suffix := range []string{".sha256.tmp", ".sha256", ".lock", ".final", ".whole", ".journal"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				id = base
				break
			}
		}
		switch {
		case id != "":
			// Bookkeeping of an upload whose data file is gone; the file
			// that parts written in place went into, once its first part
			// is gone.
			if _, ok := names[id]; !ok && old(e, time.Hour) {
				s.removeOrphan(&rep, name)
			}
		case !strings.Contains(name, "."):
			// A data file: empty and without its .info, it is what a
			// failed creation leaves.
			if _, ok := names[name+".info"]; !ok && old(e, time.Hour) {
				if fi, err := e.Info(); err == nil && fi.Size() == 0 {
					s.removeOrphan(&rep, name)
				}
			}
		}
	}
	return rep, nil
}

func (s *Server) removeOrphan(rep *SweepReport, name string) {
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		slog.Warn("sweep uploads", "file", name, "error", err)
		return
	}
	rep.Orphans = append(rep.Orphans, name)
}

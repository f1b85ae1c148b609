// Package watch finds files that an instrument has finished writing: it
// follows folders with fsnotify, rescans them periodically (network shares
// and some platforms drop events), and reports a file once its size and
// modification time have stayed the same for a settle period.
package watch

import (
	"cmp"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// File is a file that has stopped changing.
type File struct {
	Path    string
	Size    int64
	ModTime time.Time
}

// Config configures a Watcher.
type Config struct {
	// Dirs are watched recursively (new subfolders are followed).
	Dirs []string
	// Match selects files by path (default: every regular file).
	Match func(path string) bool
	// Settle is how long a file must not change (default 2s).
	Settle time.Duration
	// Rescan is the period of the full rescan (default 30s).
	Rescan time.Duration
	Logger *slog.Logger
}

type sig struct {
	size  int64
	mtime time.Time
}

type pending struct {
	sig
	since time.Time
}

// Watcher reports settled files on Files.
type Watcher struct {
	cfg    Config
	log    *slog.Logger
	out    chan File
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// owned by run
	pend    map[string]pending
	emitted map[string]sig
	fsw     *fsnotify.Watcher
}

// New returns a watcher; Start starts it.
func New(cfg Config) *Watcher {
	cfg.Settle = cmp.Or(cfg.Settle, 2*time.Second)
	cfg.Rescan = cmp.Or(cfg.Rescan, 30*time.Second)
	if cfg.Match == nil {
		cfg.Match = func(string) bool { return true }
	}
	return &Watcher{cfg: cfg, log: cmp.Or(cfg.Logger, slog.Default()), out: make(chan File, 64), cancel: func() {},
		pend: map[string]pending{}, emitted: map[string]sig{}}
}

// Files delivers settled files. A file is delivered again after it changes.
func (w *Watcher) Files() <-chan File { return w.out }

// Start watches the folders (creating them if needed) and scans them once.
func (w *Watcher) Start(ctx context.Context) error {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	w.fsw = fsw
	for _, d := range w.cfg.Dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fsw.Close()
			return err
		}
		w.addTree(d)
	}
	ctx, w.cancel = context.WithCancel(ctx)
	w.wg.Go(func() { w.run(ctx) })
	return nil
}

// Stop stops watching and waits; safe to call twice or before Start.
func (w *Watcher) Stop() {
	w.cancel()
	w.wg.Wait()
}

func (w *Watcher) addTree(root string) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if err := w.fsw.Add(p); err != nil {
				w.log.Warn("watch folder", "dir", p, "error", err)
			}
		}
		return nil
	})
}

func (w *Watcher) run(ctx context.Context) {
	defer w.fsw.Close()
	tick := time.NewTicker(max(w.cfg.Settle/4, 10*time.Millisecond))
	defer tick.Stop()
	rescan := time.NewTicker(w.cfg.Rescan)
	defer rescan.Stop()
	w.scan()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			w.event(ev)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			// An overflow loses events; the rescan finds the files.
			w.log.Warn("watch", "error", err)
			w.scan()
		case <-rescan.C:
			w.scan()
		case <-tick.C:
		}
		w.settle(ctx)
	}
}

func (w *Watcher) event(ev fsnotify.Event) {
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		delete(w.pend, ev.Name)
		return
	}
	fi, err := os.Stat(ev.Name)
	if err != nil {
		return
	}
	if fi.IsDir() {
		if ev.Has(fsnotify.Create) {
			w.addTree(ev.Name)
			w.scanDir(ev.Name) // files written before the watch was added
		}
		return
	}
	w.note(ev.Name, fi)
}

func (w *Watcher) note(path string, fi fs.FileInfo) {
	if !fi.Mode().IsRegular() || !w.cfg.Match(path) {
		return
	}
	s := sig{fi.Size(), fi.ModTime()}
	if w.emitted[path] == s {
		return
	}
	if p, ok := w.pend[path]; ok && p.sig == s {
		return
	}
	w.pend[path] = pending{sig: s, since: time.Now()}
}

func (w *Watcher) scan() {
	for _, d := range w.cfg.Dirs {
		w.scanDir(d)
	}
}

func (w *Watcher) scanDir(root string) {
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				w.log.Warn("scan", "path", p, "error", err)
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			w.note(p, fi)
		}
		return nil
	})
}

// settle re-checks pending files and emits the ones that stopped changing.
func (w *Watcher) settle(ctx context.Context) {
	now := time.Now()
	for p, pe := range w.pend {
		if now.Sub(pe.since) < w.cfg.Settle {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			delete(w.pend, p)
			continue
		}
		s := sig{fi.Size(), fi.ModTime()}
		if s != pe.sig {
			w.pend[p] = pending{sig: s, since: now}
			continue
		}
		select {
		case w.out <- File{Path: p, Size: s.size, ModTime: s.mtime}:
			delete(w.pend, p)
			w.emitted[p] = s
		case <-ctx.Done():
			return
		default:
			return // the consumer is busy; try again on the next tick
		}
	}
}

package tusserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tus/tusd/v2/pkg/handler"

	"github.com/picoflow/picoflow/internal/upload"
)

// Parallel streams: a client sends one file as several partial uploads at
// once and then creates the final upload from them (tus concatenation).
// Each partial is an upload like any other (resumable, hashed as it
// arrives, written by the zero-copy PATCH path); the final is made here.
// Parts written in place (see inplace.go) are only hashed and renamed;
// others are copied into it inside the kernel (copy_file_range) while
// the SHA-256 of the whole is computed (the first part's from the state
// saved as it arrived, the others read back), checked against the
// declared one, and the final is on disk before it is acknowledged. The
// parts are kept until the final is removed (after its run took it), so a
// final whose answer was lost can be asked for again: the same parts give
// the same final (see sameFinal).

// errChecksum answers a final whose parts do not hash to the declared
// SHA-256: the client starts the file again.
var errChecksum = handler.NewError("ERR_CHECKSUM_MISMATCH", "the parts do not hash to the declared sha256", 460)

// concater makes final uploads; it wraps the file store's.
type concater struct{ s *Server }

func (c concater) AsConcatableUpload(up handler.Upload) handler.ConcatableUpload {
	return concatable{s: c.s, up: up}
}

type concatable struct {
	s  *Server
	up handler.Upload
}

func (c concatable) ConcatUploads(ctx context.Context, partials []handler.Upload) error {
	info, err := c.up.GetInfo(ctx)
	if err != nil {
		return err
	}
	final := c.s.pathOf(info)
	var parts []handler.FileInfo
	for _, p := range partials {
		pi, err := p.GetInfo(ctx)
		if err != nil {
			return err
		}
		parts = append(parts, pi)
	}
	inPlace, err := c.s.inPlace(parts)
	if err != nil {
		return err
	}
	var h hash.Hash
	var whole string
	if inPlace {
		whole, h, err = c.s.hashInPlace(parts, info.Size)
	} else {
		h, err = c.s.assemble(ctx, final, parts)
	}
	if err != nil {
		return fmt.Errorf("concatenate %s: %w", info.ID, err)
	}
	if want := info.MetaData[upload.MetaSHA256]; want != "" && want != hex.EncodeToString(h.Sum(nil)) {
		// Nothing is deleted: the parts stay for a look, and expire.
		if !inPlace {
			os.Truncate(final, 0)
		}
		return errChecksum
	}
	// The first part names its final: the same parts asked for again give
	// this one. In place, the mark comes first: once the whole file is
	// renamed the parts cannot make another final.
	mark := func() error { return writeFileSync(c.s.finalMark(parts[0].ID), []byte(info.ID)) }
	if inPlace {
		if err := mark(); err != nil {
			return fmt.Errorf("concatenate %s: %w", info.ID, err)
		}
		if err := c.s.placeWhole(whole, final); err != nil {
			return fmt.Errorf("concatenate %s: %w", info.ID, err)
		}
	}
	if err := c.s.saveDigest(info.ID, info.Size, h); err != nil {
		return fmt.Errorf("concatenate %s: %w", info.ID, err)
	}
	if inPlace {
		return nil
	}
	return mark()
}

func (s *Server) pathOf(info handler.FileInfo) string {
	if p := info.Storage["Path"]; p != "" {
		return p
	}
	return filepath.Join(s.dir, info.ID)
}

func (s *Server) finalMark(partial string) string { return filepath.Join(s.dir, partial+".final") }

// assemble writes the parts, in order, into the (empty) file final, syncs
// it and returns the hash of its bytes.
func (s *Server) assemble(ctx context.Context, final string, parts []handler.FileInfo) (hash.Hash, error) {
	f, err := os.OpenFile(final, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The copy runs beside the hashing: each reads the parts once from the
	// page cache.
	copied := make(chan error, 1)
	go func() {
		var err error
		for _, p := range parts {
			if err = ctx.Err(); err != nil {
				break
			}
			err = appendFile(f, s.pathOf(p))
			if err != nil {
				break
			}
		}
		copied <- err
	}()
	h := s.loadDigest(parts[0].ID, parts[0].Size)
	rest := parts
	if h != nil {
		rest = parts[1:]
	} else {
		h = sha256.New()
	}
	var herr error
	for _, p := range rest {
		if herr = hashFile(h, s.pathOf(p), p.Size); herr != nil {
			break
		}
	}
	if err := <-copied; err != nil {
		return nil, err
	}
	if herr != nil {
		return nil, herr
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	return h, nil
}

// appendFile appends the file at path to f (copy_file_range on Linux).
func appendFile(f *os.File, path string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = io.Copy(f, src)
	return err
}

func hashFile(h io.Writer, path string, size int64) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	n, err := io.Copy(h, src)
	if err == nil && n != size {
		err = fmt.Errorf("%s has %d bytes, %d expected", path, n, size)
	}
	return err
}

func writeFileSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkFinal vets the creation of a final upload: every part must be a
// complete partial upload of the caller (an administrator may join
// anyone's), and each part belongs to one final only.
func (s *Server) checkFinal(ctx context.Context, ids []string) error {
	for _, id := range ids {
		up, err := s.store.GetUpload(ctx, id)
		if err != nil {
			return handler.NewError("ERR_PART_NOT_FOUND", "part "+id+" not found", http.StatusNotFound)
		}
		info, err := up.GetInfo(ctx)
		if err != nil {
			return err
		}
		if !s.callerOwns(ctx, info.MetaData[upload.MetaOwner]) {
			return handler.NewError("ERR_PART_NOT_FOUND", "part "+id+" not found", http.StatusNotFound)
		}
		if !info.IsPartial {
			return handler.NewError("ERR_NOT_PARTIAL", "upload "+id+" is not a partial upload", http.StatusBadRequest)
		}
	}
	return nil
}

// sameFinal returns the final upload already made of exactly these parts,
// or "".
func (s *Server) sameFinal(ctx context.Context, ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	b, err := os.ReadFile(s.finalMark(ids[0]))
	if err != nil {
		return ""
	}
	id := strings.TrimSpace(string(b))
	up, err := s.store.GetUpload(ctx, id)
	if err != nil {
		return ""
	}
	info, err := up.GetInfo(ctx)
	if err != nil || !info.IsFinal || info.Offset != info.Size || !slices.Equal(info.PartialUploads, ids) {
		return ""
	}
	return id
}

// postFinal answers the creation of a final upload whose parts were
// joined already with that final (an agent that lost the answer asks
// again); it reports whether it answered.
func (s *Server) postFinal(w http.ResponseWriter, r *http.Request) bool {
	header := r.Header.Get("Upload-Concat")
	list, ok := strings.CutPrefix(header, "final;")
	if !ok {
		return false
	}
	var ids []string
	for _, u := range strings.Fields(list) {
		_, id, ok := strings.Cut(u, s.cfg.BasePath)
		if !ok {
			return false
		}
		ids = append(ids, strings.Trim(id, "/"))
	}
	id := s.sameFinal(r.Context(), ids)
	if id == "" {
		return false
	}
	up, err := s.Get(r.Context(), id)
	if err != nil || !s.callerOwns(r.Context(), up.Meta[upload.MetaOwner]) {
		return false
	}
	w.Header().Set("Tus-Resumable", "1.0.0")
	w.Header().Set("Location", strings.TrimSuffix(s.cfg.BasePath, "/")+"/"+id)
	w.Header().Set("Upload-Offset", fmt.Sprint(up.Size))
	w.WriteHeader(http.StatusCreated)
	return true
}

// removeParts deletes the partial uploads a final was made of.
func (s *Server) removeParts(id string) error {
	// The .info itself: the store's GetUpload wants the data file, which
	// the transfer step has moved away by now.
	b, err := os.ReadFile(filepath.Join(s.dir, id+".info"))
	if err != nil {
		return nil
	}
	var info handler.FileInfo
	if err := json.Unmarshal(b, &info); err != nil || !info.IsFinal {
		return nil
	}
	var errs []error
	for _, p := range info.PartialUploads {
		if strings.ContainsAny(p, "/\\.") {
			continue
		}
		errs = append(errs, s.removeFiles(p), rmIfThere(s.finalMark(p)))
	}
	return errors.Join(errs...)
}

func rmIfThere(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

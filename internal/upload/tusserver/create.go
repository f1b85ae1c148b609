package tusserver

import (
	"bytes"
	"cmp"
	"net/http"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/upload"
)

// Creation with upload: a POST that carries the file's first bytes (tus's
// creation-with-upload extension; raw, or zstd as a compressed PATCH is)
// saves a small file a round trip, which on a long link is most of its
// transfer. The upload is created as for a bare POST (tusd, with every
// check of its metadata and the caller), then the body is written as a
// PATCH at offset 0 would be, and the answer is 201 with the Location and
// the offset reached. A body cut short keeps what arrived, but the client
// did not learn where: it starts again, and the sweep removes the
// orphan.

// createWithBody serves a POST with a body.
func (s *Server) createWithBody(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Encoding") == "" && !spliceable(w, r) {
		// A raw body that cannot be spliced: tusd's own creation with
		// upload, which copies it.
		s.handler.ServeHTTP(w, r)
		return
	}
	bare := r.Clone(r.Context())
	bare.Body, bare.ContentLength, bare.TransferEncoding = http.NoBody, 0, nil
	for _, h := range []string{"Content-Type", "Content-Length", "Content-Encoding", upload.HeaderDecodedLength} {
		bare.Header.Del(h)
	}
	rec := &recorder{header: http.Header{}}
	s.handler.ServeHTTP(rec, bare)
	if rec.status != http.StatusCreated {
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(cmp.Or(rec.status, http.StatusOK))
		w.Write(rec.body.Bytes())
		return
	}
	loc := rec.header.Get("Location")
	id := loc[strings.LastIndex(loc, "/")+1:]
	// The answer, success or not, says where the upload is.
	w.Header().Set("Location", loc)
	if r.Header.Get("Content-Encoding") != "" {
		s.patchCompressed(w, r, id, 0)
		return
	}
	s.patchRaw(w, r, id, 0)
}

// recorder keeps the answer of tusd's creation.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// The deadlines tusd sets for a body are moot for a creation without one
// (the body's own path sets its own).
func (r *recorder) SetReadDeadline(time.Time) error  { return nil }
func (r *recorder) SetWriteDeadline(time.Time) error { return nil }
func (r *recorder) EnableFullDuplex() error          { return nil }

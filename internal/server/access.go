package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/upload"
	"github.com/picoflow/picoflow/internal/upload/tusserver"
)

// Who may see and do what (docs/operations.md, "Security model"):
//   - a run is read by the principal that sent its file (the token's
//     subject), by the readers of the record its flow publishes, by anyone
//     who later sent the same bytes, and by administrators;
//   - an upload is touched (HEAD, PATCH, DELETE, starting its run) only by
//     the principal that created it, or an administrator;
//   - a token restricted to some flows starts only those.
// Principals compare exactly, everywhere.

func isAdmin(id *auth.Identity) bool { return id != nil && id.Has(auth.RoleAdmin) }

// readerQuery limits q to the runs the caller may read.
func (s *Server) readerQuery(r *http.Request, q flow.ListQuery) flow.ListQuery {
	id := auth.FromContext(r.Context())
	q.All = isAdmin(id)
	q.Principals = id.Principals()
	return q
}

// mayReadRun writes 404 (the run's existence is not revealed) unless the
// caller may read run id.
func (s *Server) mayReadRun(w http.ResponseWriter, r *http.Request, id string) bool {
	caller := auth.FromContext(r.Context())
	if isAdmin(caller) {
		return true
	}
	ok, err := s.Engine.CanRead(r.Context(), id, caller.Principals())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return false
	}
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Errorf("run %s: %w", id, flow.ErrNotFound))
	}
	return ok
}

// ownsUpload reports whether caller created up (or is an administrator).
func (s *Server) ownsUpload(caller *auth.Identity, up *tusserver.Upload) bool {
	if caller == nil {
		return false
	}
	return isAdmin(caller) || up.Meta[upload.MetaOwner] == caller.Subject
}

var errFlowNotAllowed = errors.New("this token may not start the flow")

// mayStartFlow checks the caller's token may start flow name.
func (s *Server) mayStartFlow(caller *auth.Identity, name string) error {
	if !caller.MayStart(name) {
		return fmt.Errorf("flow %q: %w (allowed: %v)", name, errFlowNotAllowed, caller.Flows)
	}
	return nil
}

// flowReaders is the access list the flow's publish step gives its
// records: they may read the flow's runs too.
func (s *Server) flowReaders(name string) []string {
	def, ok := s.cfg.Flows.Flow(name)
	if !ok {
		return nil
	}
	var out []string
	for _, st := range def.Steps {
		if st.Type != "publish" {
			continue
		}
		for _, p := range visibleTo(st.Params, s.cfg.VisibleTo) {
			if p != catalog.Public {
				out = append(out, p)
			}
		}
	}
	return out
}

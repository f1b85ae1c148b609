package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/campaign"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/record"
)

// VersionView is one version of a record in the API: who made it and what
// it found, without the raw metadata every version shares.
type VersionView struct {
	Version    int                `json:"version"`
	RunID      string             `json:"run_id"`
	Published  time.Time          `json:"published"`
	Provenance *record.Provenance `json:"provenance,omitempty"`
	Analysis   *record.Analysis   `json:"analysis,omitempty"`
	Files      []record.File      `json:"files"`
}

// recordVersions lists a record's versions, newest first.
func (s *Server) recordVersions(w http.ResponseWriter, r *http.Request) {
	vs, err := s.Catalog.Versions(r.Context(), r.PathValue("id"), principals(r))
	if errors.Is(err, catalog.ErrNotFound) {
		writeError(w, http.StatusNotFound, err)
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	out := []VersionView{}
	for _, v := range vs {
		out = append(out, VersionView{Version: v.Version, RunID: v.RunID, Published: v.Published, Provenance: v.Record.Provenance,
			Analysis: v.Record.Analysis, Files: v.Record.Files})
	}
	writeJSON(w, http.StatusOK, out)
}

// reanalyzeRecord runs one record again (an administrator's repair once a
// missing outside program is installed): a campaign of that record,
// forced, with the newest version's flow.
func (s *Server) reanalyzeRecord(w http.ResponseWriter, r *http.Request) {
	id := auth.FromContext(r.Context())
	c, err := s.Campaigns.Rerun(r.Context(), r.PathValue("id"), id.Subject, id.Principals())
	s.campaignReply(w, c, err, http.StatusCreated)
}

func (s *Server) campaignReply(w http.ResponseWriter, c *campaign.Campaign, err error, status int) {
	switch {
	case errors.Is(err, campaign.ErrInvalid):
		writeError(w, http.StatusBadRequest, err)
	case errors.Is(err, campaign.ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
	default:
		writeJSON(w, status, c)
	}
}

// createCampaign starts a re-analysis campaign over the records the query
// finds for the caller (administrators and curators).
func (s *Server) createCampaign(w http.ResponseWriter, r *http.Request) {
	var spec campaign.Spec
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	id := auth.FromContext(r.Context())
	c, err := s.Campaigns.Create(r.Context(), spec, id.Subject, id.Principals())
	s.campaignReply(w, c, err, http.StatusCreated)
}

// ownCampaign returns the campaign in the path if the caller may act on it
// (administrators: all; curators: their own).
func (s *Server) ownCampaign(w http.ResponseWriter, r *http.Request) (*campaign.Campaign, bool) {
	c, err := s.Campaigns.Get(r.Context(), r.PathValue("id"))
	id := auth.FromContext(r.Context())
	if err == nil && !isAdmin(id) && c.CreatedBy != id.Subject {
		err = campaign.ErrNotFound
	}
	if err != nil {
		s.campaignReply(w, nil, err, 0)
		return nil, false
	}
	return c, true
}

func (s *Server) listCampaigns(w http.ResponseWriter, r *http.Request) {
	id := auth.FromContext(r.Context())
	by := ""
	if !isAdmin(id) {
		by = id.Subject
	}
	cs, err := s.Campaigns.List(r.Context(), by, 100)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, cs)
}

func (s *Server) getCampaign(w http.ResponseWriter, r *http.Request) {
	if c, ok := s.ownCampaign(w, r); ok {
		writeJSON(w, http.StatusOK, c)
	}
}

func (s *Server) cancelCampaign(w http.ResponseWriter, r *http.Request) {
	if c, ok := s.ownCampaign(w, r); ok {
		c, err := s.Campaigns.Cancel(r.Context(), c.ID)
		s.campaignReply(w, c, err, http.StatusOK)
	}
}

func (s *Server) retryCampaign(w http.ResponseWriter, r *http.Request) {
	if c, ok := s.ownCampaign(w, r); ok {
		c, err := s.Campaigns.RetryFailed(r.Context(), c.ID)
		s.campaignReply(w, c, err, http.StatusOK)
	}
}

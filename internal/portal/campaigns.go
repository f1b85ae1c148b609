package portal

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/campaign"
)

// campaigns is what the portal needs of the re-analysis campaigns.
type campaigns interface {
	Create(ctx context.Context, spec campaign.Spec, createdBy string, principals []string) (*campaign.Campaign, error)
	Rerun(ctx context.Context, recordID, createdBy string, principals []string) (*campaign.Campaign, error)
	Get(ctx context.Context, id string) (*campaign.Campaign, error)
	List(ctx context.Context, createdBy string, limit int) ([]*campaign.Campaign, error)
	Cancel(ctx context.Context, id string) (*campaign.Campaign, error)
	RetryFailed(ctx context.Context, id string) (*campaign.Campaign, error)
}

// curator returns the signed-in identity when it may run campaigns, or
// writes the refusal.
func (p *Portal) curator(w http.ResponseWriter, r *http.Request) (*auth.Identity, bool) {
	id := p.cfg.Sessions.Get(r).Identity
	if !id.Has(auth.RoleAdmin) && !id.Has(auth.RoleCurator) {
		p.fail(w, r, http.StatusForbidden, "Forbidden", "Re-analysis campaigns are for administrators and curators.")
		return nil, false
	}
	return id, true
}

// checkedForm checks a POST's CSRF token.
func (p *Portal) checkedForm(w http.ResponseWriter, r *http.Request) bool {
	if !p.cfg.Sessions.Get(r).CSRFValid(r.PostFormValue("csrf")) {
		p.fail(w, r, http.StatusForbidden, "Forbidden", errCSRF.Error())
		return false
	}
	return true
}

func (p *Portal) campaignList(w http.ResponseWriter, r *http.Request) {
	id, ok := p.curator(w, r)
	if !ok {
		return
	}
	p.renderCampaigns(w, r, id, campaign.Spec{MaxInFlight: 4}, "", http.StatusOK)
}

func (p *Portal) renderCampaigns(w http.ResponseWriter, r *http.Request, id *auth.Identity, form campaign.Spec, formErr string, status int) {
	by := ""
	if !id.Has(auth.RoleAdmin) {
		by = id.Subject
	}
	cs, err := p.cfg.Campaigns.List(r.Context(), by, 50)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	var params []string
	for k, v := range form.Params {
		params = append(params, k+"="+v)
	}
	p.render(w, status, "campaigns", struct {
		page
		Campaigns  []*campaign.Campaign
		Form       campaign.Spec
		FormParams string
		FormError  string
		ParamHelp  []string
	}{p.base(r, "Re-analysis", "campaigns"), cs, form, strings.Join(params, "\n"), formErr, analysis.ParamNames()})
}

// campaignCreate starts a campaign from the form: the query runs with the
// signed-in user's principals.
func (p *Portal) campaignCreate(w http.ResponseWriter, r *http.Request) {
	id, ok := p.curator(w, r)
	if !ok || !p.checkedForm(w, r) {
		return
	}
	spec := campaign.Spec{Query: strings.TrimSpace(r.PostFormValue("query")), Flow: r.PostFormValue("flow"), Where: r.PostFormValue("where"), Params: map[string]string{}}
	spec.MaxInFlight, _ = strconv.Atoi(r.PostFormValue("max_in_flight"))
	for _, line := range strings.FieldsFunc(r.PostFormValue("params"), func(c rune) bool { return c == '\n' || c == ',' || c == ';' }) {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			p.renderCampaigns(w, r, id, spec, "parameter "+strconv.Quote(line)+": want NAME=VALUE", http.StatusBadRequest)
			return
		}
		spec.Params[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	c, err := p.cfg.Campaigns.Create(r.Context(), spec, id.Subject, id.Principals())
	if errors.Is(err, campaign.ErrInvalid) {
		p.renderCampaigns(w, r, id, spec, err.Error(), http.StatusBadRequest)
		return
	}
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	http.Redirect(w, r, "/campaigns/"+url.PathEscape(c.ID), http.StatusSeeOther)
}

// ownCampaign returns the campaign in the path when the user may see it.
func (p *Portal) ownCampaign(w http.ResponseWriter, r *http.Request) (*campaign.Campaign, bool) {
	id, ok := p.curator(w, r)
	if !ok {
		return nil, false
	}
	c, err := p.cfg.Campaigns.Get(r.Context(), r.PathValue("id"))
	if err == nil && !id.Has(auth.RoleAdmin) && c.CreatedBy != id.Subject {
		err = campaign.ErrNotFound
	}
	if errors.Is(err, campaign.ErrNotFound) {
		p.fail(w, r, http.StatusNotFound, "Not found", "There is no such campaign, or it is not yours.")
		return nil, false
	}
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Error", err.Error())
		return nil, false
	}
	return c, true
}

func (p *Portal) campaignPage(w http.ResponseWriter, r *http.Request) {
	c, ok := p.ownCampaign(w, r)
	if !ok {
		return
	}
	pct := 0
	if c.Total > 0 {
		pct = 100 * c.Settled() / c.Total
	}
	p.render(w, http.StatusOK, "campaign", struct {
		page
		C       *campaign.Campaign
		Percent int
	}{p.base(r, "Campaign "+c.ID, "campaigns"), c, pct})
}

// campaignAction cancels a campaign or retries its failed records.
func (p *Portal) campaignAction(w http.ResponseWriter, r *http.Request) {
	c, ok := p.ownCampaign(w, r)
	if !ok || !p.checkedForm(w, r) {
		return
	}
	var err error
	if strings.HasSuffix(r.URL.Path, "/cancel") {
		_, err = p.cfg.Campaigns.Cancel(r.Context(), c.ID)
	} else {
		_, err = p.cfg.Campaigns.RetryFailed(r.Context(), c.ID)
	}
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	http.Redirect(w, r, "/campaigns/"+url.PathEscape(c.ID), http.StatusSeeOther)
}

// recordReanalyze re-runs one record (administrators; the repair of a
// record made while an outside program was missing).
func (p *Portal) recordReanalyze(w http.ResponseWriter, r *http.Request) {
	id := p.cfg.Sessions.Get(r).Identity
	if !id.Has(auth.RoleAdmin) {
		p.fail(w, r, http.StatusForbidden, "Forbidden", "Only administrators can re-run a record.")
		return
	}
	if !p.checkedForm(w, r) {
		return
	}
	c, err := p.cfg.Campaigns.Rerun(r.Context(), r.PathValue("id"), id.Subject, id.Principals())
	if err != nil {
		p.fail(w, r, http.StatusBadRequest, "Re-run failed", err.Error())
		return
	}
	http.Redirect(w, r, "/campaigns/"+url.PathEscape(c.ID), http.StatusSeeOther)
}

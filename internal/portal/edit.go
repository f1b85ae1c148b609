package portal

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/record"
)

// mayEdit reports whether a signed-in identity may edit what people say
// about a record it can see (description, keywords, sample, licence):
// administrators, curators, and the operator the record names.
func mayEdit(id *auth.Identity, e *catalog.Entry) bool {
	if id == nil {
		return false
	}
	if id.Has(auth.RoleAdmin) || id.Has(auth.RoleCurator) {
		return true
	}
	op := e.Record.Operator()
	return op != "" && id.Subject == "user:"+op
}

// editRecord saves an edit of a record's description, keywords, sample and
// licence as a new version, with who and when.
func (p *Portal) editRecord(w http.ResponseWriter, r *http.Request) {
	s := p.cfg.Sessions.Get(r)
	if !p.checkedForm(w, r) {
		return
	}
	e, err := p.cfg.Catalog.Get(r.Context(), r.PathValue("id"), s.Identity.Principals())
	if errors.Is(err, catalog.ErrNotFound) {
		p.fail(w, r, http.StatusNotFound, "Not found", "There is no such record, or it is not shared with you.")
		return
	}
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	if !mayEdit(s.Identity, e) {
		p.fail(w, r, http.StatusForbidden, "Forbidden", "Only administrators, curators and the record's operator can edit it.")
		return
	}
	field := func(k string, n int) (string, bool) {
		v := strings.TrimSpace(r.PostFormValue(k))
		return v, utf8.RuneCountInString(v) <= n && !strings.ContainsRune(v, 0)
	}
	desc, ok1 := field("description", 4000)
	kws, ok2 := field("keywords", 2000)
	sample, ok3 := field("sample", 200)
	license, ok4 := field("license", 200)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		p.fail(w, r, http.StatusBadRequest, "Too long", "A description has at most 4000 characters; keywords 2000; sample and licence 200.")
		return
	}
	var keywords []string
	for _, k := range strings.Split(kws, ",") {
		if k = strings.TrimSpace(k); k != "" && !slices.Contains(keywords, k) {
			keywords = append(keywords, k)
		}
	}
	before := *e.Record
	before.Subjects, before.Descriptions, before.RightsList = slices.Clone(e.Record.Subjects), slices.Clone(e.Record.Descriptions), slices.Clone(e.Record.RightsList)
	e.Record.Describe(desc, keywords, sample, license)
	changes := record.Diff(&before, e.Record)
	if len(changes) == 0 {
		http.Redirect(w, r, "/records/"+url.PathEscape(e.ID), http.StatusSeeOther)
		return
	}
	e.Record.Edits = append(slices.Clone(e.Record.Edits), record.Edit{By: s.Identity.Subject, At: time.Now().UTC(), Changes: changes})
	e.NewVersion, e.Published = true, time.Now()
	if err := p.cfg.Catalog.Put(r.Context(), e); err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Not saved", err.Error())
		return
	}
	p.log.Info("record edited", "record", e.ID, "by", s.Identity.Subject, "version", e.Version, "changes", strings.Join(changes, "; "))
	http.Redirect(w, r, "/records/"+url.PathEscape(e.ID), http.StatusSeeOther)
}

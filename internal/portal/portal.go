// Package portal is the web interface: search with facets and a date
// histogram, record pages with figures, spectra, videos and metadata in
// units, a live runs dashboard, and sign-in (local accounts, OIDC). Pages
// are server-rendered html/template (every value escaped) with htmx for
// partial updates, all embedded in the binary.
package portal

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/compute"
	"github.com/picoflow/picoflow/internal/flow"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// runStore is what the portal needs of the flow engine.
type runStore interface {
	Runs(ctx context.Context, q flow.ListQuery) ([]*flow.Run, error)
	Run(ctx context.Context, id string) (*flow.Run, error)
	CanRead(ctx context.Context, id string, principals []string) (bool, error)
	ReadFilter(ctx context.Context, principals []string, all bool) func(runID string) bool
	Retry(ctx context.Context, id string) (*flow.Run, error)
	Events() *flow.Broker
	CountRuns(ctx context.Context, q flow.ListQuery) (map[string]int, error)
	Flows() flow.Config
}

// Config configures the portal.
type Config struct {
	Catalog  catalog.Index
	Runs     runStore
	Sessions *auth.Sessions
	Accounts *auth.Accounts
	// OIDC, when set, offers sign-in through an OpenID Connect provider.
	OIDC   *OIDC
	Logger *slog.Logger
	// Compute, when set, lists the compute endpoints and batch blocks for
	// administrators on the runs page.
	Compute func(ctx context.Context) ([]compute.EndpointInfo, []compute.Block, error)
	// Thumbnail, when set, returns the path of a record's small picture
	// for search results (ok false: it has none).
	Thumbnail func(ctx context.Context, e *catalog.Entry) (path string, ok bool, err error)
	// Campaigns, when set, gives administrators and curators the
	// re-analysis pages and administrators the record page's re-run.
	Campaigns campaigns
}

// Portal serves the web interface.
type Portal struct {
	cfg      Config
	log      *slog.Logger
	pages    map[string]*template.Template
	throttle *signInThrottle
}

var funcs = template.FuncMap{
	"date": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02")
	},
	"last":    func(v []monthBar) monthBar { return v[len(v)-1] },
	"thumb":   func(h catalog.Hit) string { return "/records/" + url.PathEscape(h.ID) + "/thumb" },
	"fileURL": fileURL,
	"fileURLv": func(id, name string, version int) string {
		if version > 0 {
			return fileURL(id, name) + "?version=" + fmt.Sprint(version)
		}
		return fileURL(id, name)
	},
	"bytes": func(n int64) string {
		switch {
		case n >= 1e9:
			return fmt.Sprintf("%.2f GB", float64(n)/1e9)
		case n >= 1e6:
			return fmt.Sprintf("%.1f MB", float64(n)/1e6)
		case n >= 1e3:
			return fmt.Sprintf("%.0f kB", float64(n)/1e3)
		}
		return fmt.Sprintf("%d B", n)
	},
	"dur": fmtDur,
}

func fileURL(id, name string) string {
	return "/api/v1/records/" + url.PathEscape(id) + "/files/" + url.PathEscape(name)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1e3)
}

// New parses the templates.
func New(cfg Config) (*Portal, error) {
	p := &Portal{cfg: cfg, log: cmp.Or(cfg.Logger, slog.Default()), pages: map[string]*template.Template{}, throttle: newSignInThrottle()}
	for _, name := range []string{"search", "record", "runs", "run", "login", "error", "campaigns", "campaign"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("portal: %w", err)
		}
		p.pages[name] = t
	}
	return p, nil
}

// Routes registers the portal's pages on mux.
func (p *Portal) Routes(mux *http.ServeMux) {
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(http.FileServerFS(static), time.Hour)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/search", http.StatusFound) })
	// Any other address: a page in words, not Go's plain "404 page not found".
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"no such API endpoint"}` + "\n"))
			return
		}
		p.fail(w, r, http.StatusNotFound, "Not found", "There is no page at this address. Search the records, or look at the runs.")
	})
	mux.HandleFunc("GET /search", p.search)
	mux.HandleFunc("GET /records/{id}", p.record)
	mux.HandleFunc("GET /records/{id}/thumb", p.thumb)
	mux.HandleFunc("GET /xray-lines.json", xrayLines)
	mux.HandleFunc("GET /proposals/{id}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/search?"+url.Values{"q": {"proposal:" + r.PathValue("id")}, "sort": {"oldest"}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /records/{id}/edit", p.signedIn(p.editRecord))
	mux.HandleFunc("GET /runs", p.signedIn(p.runs))
	mux.HandleFunc("GET /runs/events", p.signedIn(p.runEvents))
	mux.HandleFunc("GET /runs/{id}", p.signedIn(p.run))
	mux.HandleFunc("POST /runs/{id}/retry", p.signedIn(p.retry))
	if p.cfg.Campaigns != nil {
		mux.HandleFunc("GET /campaigns", p.signedIn(p.campaignList))
		mux.HandleFunc("POST /campaigns", p.signedIn(p.campaignCreate))
		mux.HandleFunc("GET /campaigns/{id}", p.signedIn(p.campaignPage))
		mux.HandleFunc("POST /campaigns/{id}/cancel", p.signedIn(p.campaignAction))
		mux.HandleFunc("POST /campaigns/{id}/retry", p.signedIn(p.campaignAction))
		mux.HandleFunc("POST /records/{id}/reanalyze", p.signedIn(p.recordReanalyze))
	}
	mux.HandleFunc("GET /login", p.loginPage)
	mux.HandleFunc("POST /login", p.login)
	mux.HandleFunc("POST /logout", p.logout)
	if p.cfg.OIDC != nil {
		mux.HandleFunc("GET /auth/login", p.cfg.OIDC.start)
		mux.HandleFunc("GET /auth/callback", p.oidcCallback)
	}
}

func cacheFor(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(d.Seconds())))
		h.ServeHTTP(w, r)
	})
}

// page is what every template gets.
type page struct {
	Title, Nav, Path, CSRF string
	User                   *auth.Identity
	Admin                  bool
	// Curator may run re-analysis campaigns (administrators too).
	Curator bool
}

func (p *Portal) base(r *http.Request, title, nav string) page {
	pg := page{Title: title, Nav: nav, Path: r.URL.RequestURI()}
	if s := p.cfg.Sessions.Get(r); s != nil {
		pg.User, pg.CSRF = s.Identity, s.CSRF
		pg.Admin = s.Identity.Has(auth.RoleAdmin)
		pg.Curator = pg.Admin || s.Identity.Has(auth.RoleCurator)
		if pg.User.Name == "" {
			pg.User.Name = strings.SplitN(pg.User.Subject, ":", 2)[1]
		}
	}
	return pg
}

func (p *Portal) render(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	if err := p.pages[name].ExecuteTemplate(w, "layout", data); err != nil {
		p.log.Error("render", "page", name, "error", err)
	}
}

func (p *Portal) fail(w http.ResponseWriter, r *http.Request, status int, heading, msg string) {
	p.render(w, status, "error", struct {
		page
		Heading, Message string
	}{p.base(r, heading, ""), heading, msg})
}

// signedIn sends anonymous users to the login page.
func (p *Portal) signedIn(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p.cfg.Sessions.Get(r) == nil {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
			return
		}
		h(w, r)
	}
}

// principals of the request's user (nil when anonymous: public only).
func (p *Portal) principals(r *http.Request) []string {
	if s := p.cfg.Sessions.Get(r); s != nil {
		return s.Identity.Principals()
	}
	return nil
}

// safeNext keeps redirects on this site.
// safeNext returns next when it is a path on this site, else /search. A
// browser drops tabs and newlines from a URL and reads \ as /, so
// "/\t/evil.example" would leave the site: any control character or
// backslash is refused, as is anything with a scheme or host.
func safeNext(next string) string {
	if next == "" || len(next) > 2048 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return "/search"
	}
	for _, c := range []byte(next) {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "/search"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "/search"
	}
	return next
}

var errCSRF = errors.New("the form expired; reload the page and try again")

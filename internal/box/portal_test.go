package box_test

import (
	"bytes"
	"context"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/picoflow/picoflow/internal/agent"
	"github.com/picoflow/picoflow/internal/box"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/catalog/catalogtest"
	"github.com/picoflow/picoflow/internal/portal"
	"github.com/picoflow/picoflow/internal/server"
	"github.com/picoflow/picoflow/internal/simulate"
)

type browser struct {
	t    *testing.T
	c    *http.Client
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}, base: base}
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (b *browser) post(path string, form url.Values) (int, string) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.base+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, html string) string {
	m := csrfRe.FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no csrf field in page")
	}
	return m[1]
}

// signIn returns a browser signed in to b's portal as its administrator.
func signIn(t *testing.T, b *box.Box) *browser {
	u := newBrowser(t, b.Server.URL())
	_, login := u.get("/login")
	if code, body := u.post("/login", url.Values{"csrf": {csrfOf(t, login)}, "user": {"admin"}, "password": {b.AdminPassword}, "next": {"/runs"}}); code != 200 {
		t.Fatalf("sign in: %d\n%s", code, body)
	}
	return u
}

// startWithRecord runs a box and sends one simulated spectrum image through.
func startWithRecord(t *testing.T, cfg box.Config) (*box.Box, agent.Entry) {
	ctx := context.Background()
	o := &outcomes{ch: make(chan agent.Entry, 4)}
	cfg.Dir, cfg.Workers, cfg.Settle, cfg.OnChange = t.TempDir(), workers, 200*time.Millisecond, o.onChange
	b, err := box.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Stop(context.Background()) })
	if _, err := simulate.WriteSpectrumImage(ctx, filepath.Join(b.Folders["hyperspectral"], "gold.emd"), simulate.SpectrumImageSpec{
		Width: 32, Height: 32, Support: "C", Elements: []string{"Au"}, CountsPerPixel: 300, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	e := o.next(t)
	if e.State != agent.StateDone {
		t.Fatalf("file: %+v", e)
	}
	return b, e
}

func TestPortalLocalAccounts(t *testing.T) {
	t.Parallel()
	b, e := startWithRecord(t, box.Config{})
	ctx := context.Background()
	hostile := `<script>alert("pwned")</script><img src=x onerror=alert(1)>`
	if err := b.Server.Catalog.Put(ctx, catalogtest.NewEntry("hostile", hostile, time.Now(), "PicoProbe", "hyperspectral", []string{"Fe"}, catalog.Public)); err != nil {
		t.Fatal(err)
	}
	anon := newBrowser(t, b.Server.URL())
	if code, body := anon.get("/search"); code != 200 || strings.Contains(body, "gold.emd") || !strings.Contains(body, "1 record") {
		t.Fatalf("anonymous search: %d, sees the private record or not the public one", code)
	}
	_, body := anon.get("/search?q=script")
	if strings.Contains(body, hostile) || !strings.Contains(body, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;") {
		t.Fatalf("hostile title not escaped:\n%s", body)
	}
	if code, _ := anon.get("/runs"); code != 200 { // redirected to the login page
		t.Fatalf("runs anonymously: %d", code)
	}
	if code, _ := anon.get("/records/" + e.RunID); code != http.StatusNotFound {
		t.Fatalf("private record anonymously: %d", code)
	}

	u := newBrowser(t, b.Server.URL())
	_, login := u.get("/login?next=/runs")
	if code, _ := u.post("/login", url.Values{"user": {"admin"}, "password": {b.AdminPassword}, "next": {"/runs"}}); code != http.StatusForbidden {
		t.Fatalf("login without the form token: %d", code)
	}
	_, login = u.get("/login?next=/runs")
	if code, body := u.post("/login", url.Values{"csrf": {csrfOf(t, login)}, "user": {"admin"}, "password": {"wrong password"}}); code != http.StatusUnauthorized || !strings.Contains(body, "Wrong user name or password") {
		t.Fatalf("wrong password: %d", code)
	}
	_, login = u.get("/login")
	code, body := u.post("/login", url.Values{"csrf": {csrfOf(t, login)}, "user": {"admin"}, "password": {b.AdminPassword}, "next": {"/runs"}})
	if code != 200 || !strings.Contains(body, "gold.emd") || !strings.Contains(body, `state-succeeded`) {
		t.Fatalf("runs after login: %d\n%s", code, body)
	}
	if _, frag := u.get("/runs?fragment=1"); strings.Contains(frag, "<html") || !strings.Contains(frag, "data-run=") {
		t.Fatalf("runs fragment: %s", frag)
	}
	_, body = u.get("/search?element=Au")
	if !strings.Contains(body, "gold.emd") || !strings.Contains(body, `data-facet="element"`) || !strings.Contains(body, `class="hist"`) {
		t.Fatalf("search as admin:\n%s", body)
	}
	_, body = u.get("/records/" + e.RunID)
	for _, want := range []string{"gold.emd", "Accelerating voltage", "300 kV", "intensity.png", "spectrum-canvas", "Element map Au"} {
		if !strings.Contains(body, want) {
			t.Errorf("record page lacks %q", want)
		}
	}
	resp, err := u.c.Get(b.Server.URL() + "/records/" + e.RunID + "/thumb")
	if err != nil {
		t.Fatal(err)
	}
	thumb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(thumb), "\xff\xd8\xff") {
		t.Fatalf("thumbnail: %d, %q", resp.StatusCode, thumb[:min(len(thumb), 4)])
	}
	// State changes need the session's token.
	if code, _ := u.post("/logout", url.Values{"csrf": {"forged"}}); code != http.StatusForbidden {
		t.Fatalf("logout with a forged token: %d", code)
	}
	if code, _ := u.post("/runs/"+e.RunID+"/retry", url.Values{}); code != http.StatusForbidden {
		t.Fatalf("retry without a token: %d", code)
	}
	_, page := u.get("/search")
	if code, _ := u.post("/logout", url.Values{"csrf": {csrfOf(t, page)}}); code != 200 {
		t.Fatalf("logout: %d", code)
	}
	if _, body := u.get("/search"); strings.Contains(body, "gold.emd") {
		t.Fatal("still signed in after logout")
	}
}

func TestPortalOIDC(t *testing.T) {
	t.Parallel()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	cfg := m.Config()
	// The redirect URL needs the server's address, unknown until it
	// listens: use a fixed free port.
	addr := freePort(t)
	b, e := startWithRecord(t, box.Config{Addr: addr, OIDC: &portal.OIDCConfig{Name: "Lab SSO", Issuer: cfg.Issuer, ClientID: cfg.ClientID,
		ClientSecret: cfg.ClientSecret, RedirectURL: "http://" + addr + "/auth/callback", AdminGroups: []string{"facility-staff"}}})
	// Share the record with a group the provider will assert.
	ent, err := b.Server.Catalog.Get(context.Background(), e.RunID, []string{catalog.Admin})
	if err != nil {
		t.Fatal(err)
	}
	ent.VisibleTo = []string{"group:picoprobe-users"}
	if err := b.Server.Catalog.Put(context.Background(), ent); err != nil {
		t.Fatal(err)
	}
	m.QueueUser(&mockoidc.MockUser{Subject: "u-42", Email: "alice@lab.example", Groups: []string{"picoprobe-users"}})
	u := newBrowser(t, b.Server.URL())
	_, login := u.get("/login")
	if !strings.Contains(login, "Sign in with Lab SSO") {
		t.Fatal("no OIDC button on the login page")
	}
	code, body := u.get("/auth/login?next=" + url.QueryEscape("/records/"+e.RunID))
	if code != 200 || !strings.Contains(body, "gold.emd") || !strings.Contains(body, "alice@lab.example") {
		t.Fatalf("after OIDC sign-in: %d\n%s", code, body)
	}
	if code, _ := u.get("/runs"); code != 200 {
		t.Fatalf("runs: %d", code)
	}
	// A user without the group does not see it.
	m.QueueUser(&mockoidc.MockUser{Subject: "u-7", Email: "bob@lab.example", Groups: []string{"other"}})
	v := newBrowser(t, b.Server.URL())
	v.get("/auth/login")
	if code, _ := v.get("/records/" + e.RunID); code != http.StatusNotFound {
		t.Fatalf("bob sees alice's group's record: %d", code)
	}
	// A forged callback is refused.
	w := newBrowser(t, b.Server.URL())
	if code, _ := w.get("/auth/callback?code=x&state=y"); code != http.StatusUnauthorized {
		t.Fatalf("forged callback: %d", code)
	}
}

// TestMovieRecord: a movie goes through the spatiotemporal flow; its record
// page plays the MP4s (served with byte ranges) and shows the counts plot.
func TestMovieRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := &outcomes{ch: make(chan agent.Entry, 4)}
	b, err := box.Start(ctx, box.Config{Dir: t.TempDir(), Workers: workers, Settle: 200 * time.Millisecond, OnChange: o.onChange, Public: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(ctx)
	// The stage drifts 0.3 px per frame: the operator is told.
	if _, err := simulate.WriteMovie(ctx, filepath.Join(b.Folders["spatiotemporal"], "growth.emd"), simulate.MovieSpec{Frames: 30, Width: 96, Height: 96, Particles: 6, Seed: 3, Drift: 0.3}); err != nil {
		t.Fatal(err)
	}
	e := o.next(t)
	if e.State != agent.StateDone {
		t.Fatalf("movie: %+v", e)
	}
	if !strings.Contains(e.Alerts, "sample drift") {
		t.Errorf("no drift alert at the instrument: %q", e.Alerts)
	}
	// Facility staff see it too: on the runs dashboard and the run's page.
	staff := signIn(t, b)
	if _, page := staff.get("/runs"); !regexp.MustCompile(`<span class="warn"[^>]*>⚠ sample drift`).MatchString(page) {
		t.Errorf("no drift warning on the runs page:\n%s", page)
	}
	if _, page := staff.get("/runs/" + e.RunID); !strings.Contains(page, `<div class="alert warn">⚠ sample drift`) {
		t.Errorf("no drift warning on the run page:\n%s", page)
	}
	ent, err := b.Server.Catalog.Get(ctx, e.RunID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ent.Kind() != "spatiotemporal" || ent.Record.Analysis.Metrics["mean_particles_per_frame"] < 3 {
		t.Fatalf("movie record: kind %s, metrics %v", ent.Kind(), ent.Record.Analysis.Metrics)
	}
	u := newBrowser(t, b.Server.URL())
	_, page := u.get("/records/" + e.RunID)
	for _, want := range []string{`<video controls`, `/files/movie.mp4`, `/files/annotated.mp4`, `/files/counts.png`, "Particles per frame"} {
		if !strings.Contains(page, want) {
			t.Errorf("movie record page lacks %q", want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, b.Server.URL()+"/api/v1/records/"+e.RunID+"/files/movie.mp4", nil)
	req.Header.Set("Range", "bytes=0-99")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || len(body) != 100 || resp.Header.Get("Content-Type") != "video/mp4" || !strings.Contains(string(body[:12]), "ftyp") {
		t.Fatalf("movie.mp4 range request: %d, %d bytes, %s", resp.StatusCode, len(body), resp.Header.Get("Content-Type"))
	}
}

// TestThumbnails: search results get small thumbnails (a fraction of the
// full map's bytes), revalidated by ETag; a version's files are cached for
// good, the newest version's revalidated.
func TestThumbnails(t *testing.T) {
	t.Parallel()
	b, ae := startWithRecord(t, box.Config{Public: true})
	base := b.Server.URL()
	e, err := b.Server.Catalog.Get(context.Background(), ae.RunID, []string{catalog.Admin})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(base + "/records/" + e.ID + "/thumb")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	img, err := jpeg.Decode(bytes.NewReader(body))
	if err != nil || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("thumbnail: %s %v", resp.Header.Get("Content-Type"), err)
	}
	var full int64
	for _, f := range e.Record.Files {
		if f.Role == "intensity-map" {
			full = f.Size
		}
	}
	if bd := img.Bounds(); max(bd.Dx(), bd.Dy()) > server.ThumbnailWidth || len(body) > 16<<10 {
		t.Errorf("thumbnail %dx%d, %d bytes (the map: %d bytes)", bd.Dx(), bd.Dy(), len(body), full)
	}
	t.Logf("thumbnail %dx%d, %d bytes; the intensity map %d bytes", img.Bounds().Dx(), img.Bounds().Dy(), len(body), full)
	req, _ := http.NewRequest(http.MethodGet, base+"/records/"+e.ID+"/thumb", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	if r2, err := http.DefaultClient.Do(req); err != nil || r2.StatusCode != http.StatusNotModified {
		t.Errorf("thumbnail revalidation: %v %v", r2.Status, err)
	}
	for q, want := range map[string]string{"": "private, no-cache", "?version=1": "private, max-age=31536000, immutable"} {
		r3, err := http.Get(base + "/api/v1/records/" + e.ID + "/files/intensity.png" + q)
		if err != nil {
			t.Fatal(err)
		}
		r3.Body.Close()
		if got := r3.Header.Get("Cache-Control"); r3.StatusCode != 200 || got != want {
			t.Errorf("intensity.png%s: %d, Cache-Control %q, want %q", q, r3.StatusCode, got, want)
		}
	}
}

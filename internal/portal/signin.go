package portal

// Sign-in and sign-out with local accounts.

import (
	"fmt"
	"net/http"
	"strconv"
)

const loginCSRFCookie = "pf_login"

func (p *Portal) loginPage(w http.ResponseWriter, r *http.Request) {
	p.showLogin(w, r, http.StatusOK, "")
}

func (p *Portal) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	token := randomString()
	http.SetCookie(w, &http.Cookie{Name: loginCSRFCookie, Value: token, Path: "/login", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: p.cfg.Sessions.Secure, MaxAge: 3600})
	pg := p.base(r, "Sign in", "")
	pg.CSRF = token
	next := safeNext(r.FormValue("next"))
	oidcName := ""
	if p.cfg.OIDC != nil {
		oidcName = p.cfg.OIDC.Name
	}
	p.render(w, status, "login", struct {
		page
		Error, Next, OIDC string
	}{pg, msg, next, oidcName})
}

func (p *Portal) login(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCSRFCookie)
	if err != nil || c.Value == "" || c.Value != r.PostFormValue("csrf") {
		p.showLogin(w, r, http.StatusForbidden, errCSRF.Error())
		return
	}
	keys := throttleKeys(r, r.PostFormValue("user"))
	if d := p.throttle.wait(keys); d > 0 {
		secs := int(d.Seconds() + 0.999)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		p.log.Warn("sign-in refused: too many wrong passwords", "user", r.PostFormValue("user"), "remote", r.RemoteAddr, "wait_s", secs)
		p.showLogin(w, r, http.StatusTooManyRequests, fmt.Sprintf("Too many wrong passwords. Try again in %d s.", secs))
		return
	}
	id, err := p.cfg.Accounts.Check(r.Context(), r.PostFormValue("user"), r.PostFormValue("password"))
	if err != nil {
		p.throttle.failed(keys)
		p.log.Warn("sign-in failed", "user", r.PostFormValue("user"), "remote", r.RemoteAddr)
		p.showLogin(w, r, http.StatusUnauthorized, "Wrong user name or password.")
		return
	}
	p.throttle.succeeded(keys)
	if _, err := p.cfg.Sessions.Create(r.Context(), w, id); err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (p *Portal) logout(w http.ResponseWriter, r *http.Request) {
	s := p.cfg.Sessions.Get(r)
	if s != nil && !s.CSRFValid(r.PostFormValue("csrf")) {
		p.fail(w, r, http.StatusForbidden, "Forbidden", errCSRF.Error())
		return
	}
	p.cfg.Sessions.Delete(w, r)
	http.Redirect(w, r, "/search", http.StatusSeeOther)
}

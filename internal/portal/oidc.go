package portal

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/picoflow/picoflow/internal/auth"
)

// OIDCConfig configures sign-in through an OpenID Connect provider.
type OIDCConfig struct {
	// Name is shown on the sign-in button ("Argonne", "Google").
	Name         string `yaml:"name"`
	Issuer       string `yaml:"issuer"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// RedirectURL is this portal's /auth/callback as the provider sees it.
	RedirectURL string `yaml:"redirect_url"`
	// GroupsClaim names the claim listing the user's groups (default
	// "groups"); each becomes the principal "group:NAME".
	GroupsClaim string `yaml:"groups_claim"`
	// AdminGroups are provider groups whose members are administrators.
	AdminGroups []string `yaml:"admin_groups"`
}

// OIDC is a configured provider.
type OIDC struct {
	Name     string
	cfg      OIDCConfig
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	secure   bool
}

// NewOIDC discovers the provider.
func NewOIDC(ctx context.Context, cfg OIDCConfig, secure bool) (*OIDC, error) {
	prov, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc %s: %w", cfg.Issuer, err)
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	return &OIDC{
		Name: cfg.Name, cfg: cfg, secure: secure,
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
			Endpoint: prov.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile", "email", "groups"}},
		verifier: prov.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
	}, nil
}

func randomString() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

const oidcCookie = "pf_oidc"

// start redirects to the provider with state, nonce and PKCE kept in a
// short-lived cookie.
func (o *OIDC) start(w http.ResponseWriter, r *http.Request) {
	state, nonce, verifier := randomString(), randomString(), oauth2.GenerateVerifier()
	next := safeNext(r.URL.Query().Get("next"))
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: strings.Join([]string{state, nonce, verifier, base64.RawURLEncoding.EncodeToString([]byte(next))}, "."),
		Path: "/auth/", HttpOnly: true, Secure: o.secure, SameSite: http.SameSiteLaxMode, MaxAge: 600})
	http.Redirect(w, r, o.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

var groupRe = regexp.MustCompile(`[^A-Za-z0-9._@+-]`)

// finish checks the callback and returns the signed-in identity.
func (o *OIDC) finish(r *http.Request) (*auth.Identity, string, error) {
	c, err := r.Cookie(oidcCookie)
	if err != nil {
		return nil, "", fmt.Errorf("sign-in expired; start again")
	}
	parts := strings.Split(c.Value, ".")
	if len(parts) != 4 || r.URL.Query().Get("state") != parts[0] {
		return nil, "", fmt.Errorf("sign-in state mismatch; start again")
	}
	if e := r.URL.Query().Get("error"); e != "" {
		return nil, "", fmt.Errorf("the provider refused: %s", e)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	tok, err := o.oauth.Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(parts[2]))
	if err != nil {
		return nil, "", fmt.Errorf("exchange code: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		return nil, "", fmt.Errorf("no id_token in the provider's answer")
	}
	idt, err := o.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, "", fmt.Errorf("verify id token: %w", err)
	}
	if idt.Nonce != parts[1] {
		return nil, "", fmt.Errorf("id token nonce mismatch")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, "", fmt.Errorf("read claims: %w", err)
	}
	name, _ := claims["email"].(string)
	if name == "" {
		name = idt.Subject
	}
	user := groupRe.ReplaceAllString(name, "_")
	if len(user) > 128 {
		user = user[:128]
	}
	id := &auth.Identity{Subject: "user:" + user, Name: name}
	if dn, _ := claims["name"].(string); dn != "" {
		id.Name = dn
	}
	if gs, ok := claims[o.cfg.GroupsClaim].([]any); ok {
		for _, g := range gs {
			s, ok := g.(string)
			if !ok || s == "" {
				continue
			}
			id.Groups = append(id.Groups, "group:"+groupRe.ReplaceAllString(s, "_"))
			for _, a := range o.cfg.AdminGroups {
				if a == s {
					id.Groups = append(id.Groups, auth.RoleAdmin)
				}
			}
		}
	}
	next, _ := base64.RawURLEncoding.DecodeString(parts[3])
	return id, safeNext(string(next)), nil
}

func (p *Portal) oidcCallback(w http.ResponseWriter, r *http.Request) {
	id, next, err := p.cfg.OIDC.finish(r)
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: "/auth/", MaxAge: -1})
	if err != nil {
		p.log.Warn("oidc sign-in", "error", err)
		p.showLogin(w, r, http.StatusUnauthorized, "Sign-in failed: "+err.Error())
		return
	}
	if _, err := p.cfg.Sessions.Create(r.Context(), w, id); err != nil {
		p.fail(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

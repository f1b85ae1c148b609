// Package auth identifies callers: API tokens for agents, endpoints and
// scripts (only their SHA-256 is stored), and the principals a caller acts
// as ("user:alice", "group:picoprobe", "agent:pc-1", "role:admin"), which the
// catalog's access lists are written in.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Errors.
var (
	// ErrUnauthenticated means no valid credentials were given.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden means the caller may not do this.
	ErrForbidden = errors.New("forbidden")
)

// Identity is an authenticated caller.
type Identity struct {
	// Subject is the caller's own principal ("agent:pc-1", "user:alice").
	Subject string
	// Name is a display name ("Alice Smith", "alice@lab.example").
	Name string
	// Groups are further principals ("group:picoprobe", "role:admin").
	Groups []string
	// Flows, when not empty, are the only flows the caller may start (a
	// token restricted with --flows).
	Flows []string
}

// MayStart reports whether the identity may start flow name.
func (id *Identity) MayStart(name string) bool {
	if id == nil {
		return false
	}
	if len(id.Flows) == 0 || id.Has(RoleAdmin) {
		return true
	}
	for _, f := range id.Flows {
		if f == name {
			return true
		}
	}
	return false
}

// Principals returns Subject and Groups.
func (id *Identity) Principals() []string {
	if id == nil {
		return nil
	}
	return append([]string{id.Subject}, id.Groups...)
}

// Has reports whether the identity holds principal p.
func (id *Identity) Has(p string) bool {
	for _, q := range id.Principals() {
		if q == p {
			return true
		}
	}
	return false
}

// Roles.
const (
	RoleAdmin    = "role:admin"
	RoleAgent    = "role:agent"
	RoleEndpoint = "role:endpoint"
	// RoleMetrics may read /metrics (a Prometheus scraper's token).
	RoleMetrics = "role:metrics"
	// RoleCurator may start re-analysis campaigns over the records its
	// holder can see.
	RoleCurator = "role:curator"
)

type ctxKey struct{}

// WithIdentity returns a context carrying id.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the caller's identity, or nil for anonymous callers.
func FromContext(ctx context.Context) *Identity {
	id, _ := ctx.Value(ctxKey{}).(*Identity)
	return id
}

// Tokens stores API tokens in the server database.
type Tokens struct {
	write, read *sql.DB
}

// NewTokens returns a token store over a migrated database.
func NewTokens(write, read *sql.DB) *Tokens { return &Tokens{write: write, read: read} }

var principalRe = regexp.MustCompile(`^(user|group|agent|endpoint|role):[A-Za-z0-9._@+-]{1,128}$`)

// ValidPrincipal reports whether p is a well-formed principal.
func ValidPrincipal(p string) bool { return principalRe.MatchString(p) }

// Create makes a token for subject with extra groups (comma-separated in
// storage) and returns the secret, which is shown once and never stored.
func (t *Tokens) Create(ctx context.Context, name, subject string, groups ...string) (string, error) {
	return t.CreateRestricted(ctx, name, subject, nil, groups...)
}

var flowNameRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// CreateRestricted is Create for a token that may start only the given
// flows (none: any flow).
func (t *Tokens) CreateRestricted(ctx context.Context, name, subject string, flows []string, groups ...string) (string, error) {
	for _, f := range flows {
		if !flowNameRe.MatchString(f) {
			return "", fmt.Errorf("create token: invalid flow name %q", f)
		}
	}
	for _, p := range append([]string{subject}, groups...) {
		if !ValidPrincipal(p) {
			return "", fmt.Errorf("create token: invalid principal %q", p)
		}
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	secret := "pf_" + base64.RawURLEncoding.EncodeToString(b)
	principal := strings.Join(append([]string{subject}, groups...), ",")
	if _, err := t.write.ExecContext(ctx, `INSERT INTO token (hash, name, principal, created_at, flows) VALUES (?, ?, ?, ?, ?)`,
		hash(secret), name, principal, time.Now().UnixMicro(), strings.Join(flows, ",")); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	return secret, nil
}

func hash(secret string) string {
	s := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(s[:])
}

// Verify returns the identity of a token.
func (t *Tokens) Verify(ctx context.Context, secret string) (*Identity, error) {
	if !strings.HasPrefix(secret, "pf_") || len(secret) > 100 {
		return nil, ErrUnauthenticated
	}
	var principal, flows string
	err := t.read.QueryRowContext(ctx, `SELECT principal, flows FROM token WHERE hash = ?`, hash(secret)).Scan(&principal, &flows)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("verify token: %w", err)
	}
	parts := strings.Split(principal, ",")
	id := &Identity{Subject: parts[0], Groups: parts[1:]}
	if flows != "" {
		id.Flows = strings.Split(flows, ",")
	}
	return id, nil
}

// Middleware attaches the identity of a bearer token to the request
// context. Requests without a token pass through anonymously; handlers
// decide what anonymous callers may do. A bad token is rejected.
func (t *Tokens) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if h == "" {
			next.ServeHTTP(w, r)
			return
		}
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			http.Error(w, "authorization: use a Bearer token", http.StatusUnauthorized)
			return
		}
		id, err := t.Verify(r.Context(), strings.TrimSpace(secret))
		if err != nil {
			status := http.StatusUnauthorized
			if !errors.Is(err, ErrUnauthenticated) {
				status = http.StatusInternalServerError
			}
			http.Error(w, "authorization: "+err.Error(), status)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
	})
}

// Require wraps a handler so only callers holding one of the principals
// get through.
func Require(next http.Handler, principals ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := FromContext(r.Context())
		if id == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="picoflow"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		for _, p := range principals {
			if id.Has(p) {
				next.ServeHTTP(w, r)
				return
			}
		}
		http.Error(w, "forbidden", http.StatusForbidden)
	})
}

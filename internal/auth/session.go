package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Accounts are local user accounts (the embedded default; facilities sign
// in through OIDC instead). Passwords are kept as bcrypt hashes.
type Accounts struct{ write, read *sql.DB }

// NewAccounts returns the account store of a migrated database.
func NewAccounts(write, read *sql.DB) *Accounts { return &Accounts{write: write, read: read} }

// Set creates or replaces an account; groups are principals such as
// "group:picoprobe" or "role:admin".
func (a *Accounts) Set(ctx context.Context, name, password string, groups ...string) error {
	if !ValidPrincipal("user:" + name) {
		return fmt.Errorf("set account: invalid user name %q", name)
	}
	if len(password) < 8 {
		return errors.New("set account: the password needs at least 8 characters")
	}
	for _, g := range groups {
		if !ValidPrincipal(g) {
			return fmt.Errorf("set account: invalid group %q", g)
		}
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("set account: %w", err)
	}
	_, err = a.write.ExecContext(ctx, `INSERT INTO account (name, password_hash, groups, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, groups = excluded.groups`,
		name, string(h), strings.Join(groups, ","), time.Now().UnixMicro())
	if err != nil {
		return fmt.Errorf("set account: %w", err)
	}
	return nil
}

// Check verifies a password and returns the account's identity.
func (a *Accounts) Check(ctx context.Context, name, password string) (*Identity, error) {
	var hash, groups string
	err := a.read.QueryRowContext(ctx, `SELECT password_hash, groups FROM account WHERE name = ?`, name).Scan(&hash, &groups)
	if errors.Is(err, sql.ErrNoRows) {
		// Spend the same time as a wrong password.
		bcrypt.CompareHashAndPassword([]byte("$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z3a7IpB3P8GCwBJM4Xzm0gfC"), []byte(password))
		return nil, ErrUnauthenticated
	}
	if err != nil {
		return nil, fmt.Errorf("check account: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) != nil {
		return nil, ErrUnauthenticated
	}
	id := &Identity{Subject: "user:" + name, Name: name}
	if groups != "" {
		id.Groups = strings.Split(groups, ",")
	}
	return id, nil
}

// Sessions are signed-in portal users, identified by a cookie whose
// secret is stored hashed.
type Sessions struct {
	write, read *sql.DB
	// TTL is a session's lifetime (default 12h).
	TTL time.Duration
	// Secure marks cookies Secure (set when served over HTTPS).
	Secure bool
}

// NewSessions returns the session store of a migrated database.
func NewSessions(write, read *sql.DB) *Sessions {
	return &Sessions{write: write, read: read, TTL: 12 * time.Hour}
}

// SessionCookie is the name of the session cookie.
const SessionCookie = "pf_session"

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Session is a signed-in user's session.
type Session struct {
	Identity *Identity
	// CSRF must accompany every state-changing request of this session.
	CSRF string
}

// Create signs id in: it stores a session and sets its cookie.
func (s *Sessions) Create(ctx context.Context, w http.ResponseWriter, id *Identity) (*Session, error) {
	secret, csrf := randomToken(), randomToken()
	exp := time.Now().Add(s.TTL)
	if _, err := s.write.ExecContext(ctx, `DELETE FROM session WHERE expires_at < ?`, time.Now().UnixMicro()); err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	if _, err := s.write.ExecContext(ctx, `INSERT INTO session (hash, subject, groups, name, csrf, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		hash(secret), id.Subject, strings.Join(id.Groups, ","), id.Name, csrf, exp.UnixMicro()); err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: secret, Path: "/", Expires: exp, HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode})
	return &Session{Identity: id, CSRF: csrf}, nil
}

// Get returns the session of a request, or nil.
func (s *Sessions) Get(r *http.Request) *Session {
	c, err := r.Cookie(SessionCookie)
	if err != nil || len(c.Value) > 100 {
		return nil
	}
	var subject, groups, name, csrf string
	var exp int64
	err = s.read.QueryRowContext(r.Context(), `SELECT subject, groups, name, csrf, expires_at FROM session WHERE hash = ?`, hash(c.Value)).
		Scan(&subject, &groups, &name, &csrf, &exp)
	if err != nil || time.Now().UnixMicro() > exp {
		return nil
	}
	id := &Identity{Subject: subject, Name: name}
	if groups != "" {
		id.Groups = strings.Split(groups, ",")
	}
	return &Session{Identity: id, CSRF: csrf}
}

// Delete signs the request's session out and clears its cookie.
func (s *Sessions) Delete(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		s.write.ExecContext(r.Context(), `DELETE FROM session WHERE hash = ?`, hash(c.Value))
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteLaxMode})
}

// CSRFValid compares a submitted token with the session's in constant time.
func (s *Session) CSRFValid(token string) bool {
	return s != nil && token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) == 1
}

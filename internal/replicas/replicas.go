// Package replicas lets a client of the facility server (the agent, a
// compute endpoint) use several server replicas that share one PostgreSQL
// database and data directory: requests go to the current replica, and when
// it cannot be reached the client moves on to the next. All replicas serve
// the same API and upload paths, so a URL of one is rebased onto another.
// It uses only the standard library: the agent binary stays small.
package replicas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
)

// Set is the replicas of one server, in order of preference.
type Set struct {
	bases []string
	cur   atomic.Int64
	// Logger, if set, hears of each move to another replica.
	Logger *slog.Logger
}

// Parse returns the replicas named in lists, each a base URL or several
// separated by commas ("https://a,https://b"). Trailing slashes go.
func Parse(lists ...string) (*Set, error) {
	s := &Set{}
	for _, l := range lists {
		for _, u := range strings.Split(l, ",") {
			u = strings.TrimRight(strings.TrimSpace(u), "/")
			if u == "" {
				continue
			}
			p, err := url.Parse(u)
			if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				return nil, fmt.Errorf("replicas: %q is not an http(s) URL", u)
			}
			s.bases = append(s.bases, u)
		}
	}
	if len(s.bases) == 0 {
		return nil, errors.New("replicas: no server URL")
	}
	return s, nil
}

// Len is the number of replicas.
func (s *Set) Len() int { return len(s.bases) }

// Bases lists the replicas' base URLs in order.
func (s *Set) Bases() []string { return slices.Clone(s.bases) }

// String lists the replicas, comma-separated.
func (s *Set) String() string { return strings.Join(s.bases, ",") }

// Current is the base URL requests go to now.
func (s *Set) Current() string { return s.bases[int(s.cur.Load())%len(s.bases)] }

// Failed reports that base could not be reached. If it is still the
// current replica the set moves on to the next; it returns the new current.
func (s *Set) Failed(base string, err error) string {
	i := s.cur.Load()
	if len(s.bases) > 1 && s.bases[int(i)%len(s.bases)] == base && s.cur.CompareAndSwap(i, i+1) && s.Logger != nil {
		s.Logger.Warn("server unreachable, trying the next", "server", base, "next", s.Current(), "error", err)
	}
	return s.Current()
}

// Do calls fn with the current replica's base URL. While fn fails because
// the server could not be reached (Unreachable), Do moves on and calls fn
// with the next replica, each once; it returns fn's last error.
func (s *Set) Do(ctx context.Context, fn func(base string) error) error {
	var err error
	for range len(s.bases) {
		base := s.Current()
		if err = fn(base); err == nil || !Unreachable(err) || ctx.Err() != nil {
			return err
		}
		s.Failed(base, err)
	}
	return err
}

// Rebase moves a URL of one of the replicas onto base: the part after the
// replica's base URL stays. A URL of no replica of the set gets base's
// scheme and host.
func (s *Set) Rebase(u, base string) string {
	for _, b := range s.bases {
		if strings.HasPrefix(u, b+"/") {
			return base + u[len(b):]
		}
	}
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return u
	}
	nb, err := url.Parse(base)
	if err != nil {
		return u
	}
	p.Scheme, p.Host, p.User = nb.Scheme, nb.Host, nb.User
	return p.String()
}

// ErrUnavailable marks a reply that says the replica cannot serve now (a
// proxy's 502, 503 or 504): callers wrap it so that Do moves on.
var ErrUnavailable = errors.New("server unavailable")

// Unreachable tells whether err means the request never got an answer from
// the server (refused, reset, timed out, name not found) or the answer was
// ErrUnavailable, so another replica may serve it.
func Unreachable(err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ue *url.Error
	var oe *net.OpError
	var de *net.DNSError
	return errors.As(err, &ue) || errors.As(err, &oe) || errors.As(err, &de)
}

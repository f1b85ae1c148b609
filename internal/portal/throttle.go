package portal

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// signInThrottle slows down password guessing: after freeFailures wrong
// passwords for one account, or from one address, each further try must
// wait twice as long as the last (1 s, 2 s, 4 s ... up to maxWait), even
// with the right password. A success clears the account's and the
// address's count. Kept in memory: a restart or another replica starts
// afresh, which bounds guessing per replica, not in all.
type signInThrottle struct {
	mu    sync.Mutex
	now   func() time.Time
	slots map[string]*throttleSlot
}

type throttleSlot struct {
	failures int
	until    time.Time // no try before this
	last     time.Time
}

const (
	freeFailures = 5
	maxWait      = 15 * time.Minute
)

func newSignInThrottle() *signInThrottle {
	return &signInThrottle{now: time.Now, slots: map[string]*throttleSlot{}}
}

func throttleKeys(r *http.Request, user string) []string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return []string{"user:" + user, "addr:" + host}
}

// wait returns how long the caller must still wait before trying again (0:
// may try now).
func (t *signInThrottle) wait(keys []string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var d time.Duration
	now := t.now()
	for _, k := range keys {
		if s := t.slots[k]; s != nil && s.until.After(now) {
			d = max(d, s.until.Sub(now))
		}
	}
	return d
}

// failed counts a wrong password.
func (t *signInThrottle) failed(keys []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.slots) > 100000 {
		for k, s := range t.slots {
			if now.Sub(s.last) > time.Hour {
				delete(t.slots, k)
			}
		}
	}
	for _, k := range keys {
		s := t.slots[k]
		if s == nil || now.Sub(s.last) > 24*time.Hour {
			s = &throttleSlot{}
			t.slots[k] = s
		}
		s.failures++
		s.last = now
		if n := s.failures - freeFailures; n >= 0 {
			s.until = now.Add(min(time.Second<<min(n, 20), maxWait))
		}
	}
}

// succeeded clears the counts.
func (t *signInThrottle) succeeded(keys []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		delete(t.slots, k)
	}
}

package upload

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limiter paces the bytes all uploads of an agent send together to a rate
// (bytes per second; 0: no limit), which may change while they run (a
// schedule). It also measures the rate actually sent.
type Limiter struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
	// The measured rate: bytes in the current and the previous second.
	sent             int64
	windowStart      time.Time
	prevRate, curAge float64
}

// NewLimiter returns a limiter at rate bytes per second (0: unlimited).
func NewLimiter(rate float64) *Limiter {
	return &Limiter{rate: rate, last: time.Now(), windowStart: time.Now()}
}

// SetRate changes the rate (0: unlimited).
func (l *Limiter) SetRate(rate float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate = rate
	l.tokens = math.Min(l.tokens, rate/20)
}

// Rate is the configured rate (0: unlimited).
func (l *Limiter) Rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate
}

// Sent is the rate measured over about the last two seconds (bytes/s).
func (l *Limiter) Sent() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(time.Now())
	el := time.Since(l.windowStart).Seconds()
	if el < 0.2 {
		return l.prevRate
	}
	return float64(l.sent) / el
}

func (l *Limiter) roll(now time.Time) {
	if el := now.Sub(l.windowStart).Seconds(); el >= 2 {
		l.prevRate = float64(l.sent) / el
		l.sent, l.windowStart = 0, now
	}
}

// wait blocks until n bytes may be sent.
func (l *Limiter) wait(ctx context.Context, n int) error {
	l.mu.Lock()
	now := time.Now()
	l.roll(now)
	l.sent += int64(n)
	if l.rate <= 0 {
		l.mu.Unlock()
		return nil
	}
	// Tokens accrue at the rate, up to a twentieth of a second's worth
	// (bursts stay short); a send may borrow, then waits its debt off.
	l.tokens = math.Min(l.tokens+now.Sub(l.last).Seconds()*l.rate, l.rate/20)
	l.last = now
	l.tokens -= float64(n)
	var d time.Duration
	if l.tokens < 0 {
		d = time.Duration(-l.tokens / l.rate * float64(time.Second))
	}
	l.mu.Unlock()
	if d <= 0 {
		return nil
	}
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// limited reads through a limiter, in pieces of at most a fortieth of a
// second at the limiter's rate (so the pace is smooth).
type limited struct {
	r   io.Reader
	l   *Limiter
	ctx context.Context
}

func (t *limited) Read(p []byte) (int, error) {
	if r := t.l.Rate(); r > 0 {
		if max := int(r/40) + 1; len(p) > max {
			p = p[:max]
		}
	}
	n, err := t.r.Read(p)
	if n > 0 {
		if werr := t.l.wait(t.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// ParseRate reads a rate as people write it: "400Mbit", "400 Mbit/s", "1Gbit",
// "1Gbps", "50MB/s", "50MBps", "50MB", "unlimited" (0). Bits are decimal (1 Mbit = 10^6 bit),
// bytes too (1 MB = 10^6 bytes). It returns bytes per second.
func ParseRate(s string) (float64, error) {
	t := strings.ReplaceAll(strings.TrimSpace(s), " ", "")
	// "Mbps" is bits, "MBps" bytes: decided before the case is folded.
	switch {
	case strings.HasSuffix(t, "bps"):
		t = strings.TrimSuffix(t, "bps") + "bit"
	case strings.HasSuffix(t, "Bps"):
		t = strings.TrimSuffix(t, "Bps") + "B"
	}
	t = strings.TrimSuffix(strings.ToLower(t), "/s")
	if t == "" || t == "0" || t == "unlimited" || t == "none" {
		return 0, nil
	}
	units := []struct {
		suffix string
		bytes  float64
	}{{"gbit", 1e9 / 8}, {"mbit", 1e6 / 8}, {"kbit", 1e3 / 8}, {"bit", 1.0 / 8}, {"gb", 1e9}, {"mb", 1e6}, {"kb", 1e3}, {"b", 1}}
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			v, err := strconv.ParseFloat(strings.TrimSuffix(t, u.suffix), 64)
			if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				break
			}
			return v * u.bytes, nil
		}
	}
	return 0, fmt.Errorf("rate %q: want a number and a unit, e.g. 400Mbit, 1Gbit or 50MB/s (or unlimited)", s)
}

// FormatRate writes a rate (bytes/s) in Mbit/s, as networks are spoken of.
func FormatRate(bps float64) string {
	if bps <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%.0f Mbit/s", bps*8/1e6)
}

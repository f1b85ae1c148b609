package upload

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"400Mbit": 50e6, "400 Mbit/s": 50e6, "1Gbit": 125e6, "1Gbps": 125e6, "50MBps": 50e6, "50MB/s": 50e6, "200kbit": 25e3, "unlimited": 0, "": 0} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("%q: %g, %v; want %g", in, got, err, want)
		}
	}
	for _, bad := range []string{"fast", "12", "-5Mbit", "5 parsecs"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestLimiterHoldsTheRate: two readers sharing one limiter send together
// at the cap, never above it, and the limiter measures what they sent.
func TestLimiterHoldsTheRate(t *testing.T) {
	const rate = 40e6 // bytes/s
	l := NewLimiter(rate)
	ctx := context.Background()
	data := bytes.Repeat([]byte{1}, 24<<20)
	t0 := time.Now()
	done := make(chan int64, 2)
	for range 2 {
		go func() {
			n, _ := io.Copy(io.Discard, &limited{r: bytes.NewReader(data), l: l, ctx: ctx})
			done <- n
		}()
	}
	total := <-done + <-done
	el := time.Since(t0).Seconds()
	got := float64(total) / el
	if got > rate*1.05 || got < rate*0.8 {
		t.Errorf("two readers together: %.1f MB/s, cap %.1f MB/s", got/1e6, rate/1e6)
	}
	if s := l.Sent(); s < rate*0.5 || s > rate*1.3 {
		t.Errorf("measured rate %.1f MB/s", s/1e6)
	}
	l.SetRate(0)
	t0 = time.Now()
	io.Copy(io.Discard, &limited{r: bytes.NewReader(data), l: l, ctx: ctx})
	if time.Since(t0) > 300*time.Millisecond {
		t.Errorf("unlimited took %v", time.Since(t0))
	}
}

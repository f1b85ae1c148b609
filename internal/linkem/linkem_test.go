package linkem

import (
	"net"
	"sync"
	"testing"
	"time"
)

// sink accepts connections and counts what they send.
func sink(t *testing.T) (string, func() int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var total int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					mu.Lock()
					total += int64(n)
					mu.Unlock()
					if err != nil {
						break
					}
				}
				c.Close()
			}()
		}
	}()
	return ln.Addr().String(), func() int64 { mu.Lock(); defer mu.Unlock(); return total }
}

// send pushes n bytes through the proxy on streams connections at once and
// returns the rate (bytes/s) at which they arrived at the sink.
func send(t *testing.T, addr string, got func() int64, streams, n int) float64 {
	buf := make([]byte, 64<<10)
	before := got()
	t0 := time.Now()
	var wg sync.WaitGroup
	for range streams {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for left := n; left > 0; left -= len(buf) {
				if _, err := c.Write(buf[:min(len(buf), left)]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for deadline := time.Now().Add(30 * time.Second); got()-before < int64(streams*n); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d bytes arrived", got()-before, streams*n)
		}
	}
	return float64(streams*n) / time.Since(t0).Seconds()
}

// TestLongFatLink: over 400 Mbit/s and 50 ms, one stream is held to its
// window per round trip; four streams fill the link; nothing goes faster
// than the link. (Rates with wide margins: this is a model, not a clock.)
func TestLongFatLink(t *testing.T) {
	target, got := sink(t)
	const rate = 50e6 // 400 Mbit/s
	p, err := Start("127.0.0.1:0", target, Link{Rate: rate, RTT: 50 * time.Millisecond, Window: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	one := send(t, p.Addr(), got, 1, 6<<20)
	four := send(t, p.Addr(), got, 4, 6<<20)
	t.Logf("one stream %.1f MB/s (window/RTT %.1f), four %.1f MB/s, link %.1f MB/s", one/1e6, float64(1<<20)/0.05/1e6, four/1e6, rate/1e6)
	if one > 0.6*rate || one < 0.25*rate {
		t.Errorf("one stream at %.1f MB/s, want about 21 MB/s (1 MiB per 50 ms)", one/1e6)
	}
	if four < 0.7*rate || four > 1.1*rate {
		t.Errorf("four streams at %.1f MB/s, want about the link's %.1f MB/s", four/1e6, rate/1e6)
	}
}

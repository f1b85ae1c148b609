// Package linkem emulates a network link between an agent and a server for
// tests and benchmarks (kernel netem is not available on every machine): a
// TCP proxy whose every connection crosses a link of a given rate, round
// trip time (with jitter) and bottleneck queue, under a TCP-like window:
// each connection keeps at most Window bytes in flight, a byte counting as
// in flight from when it leaves until a round trip later (when its ack
// would be back). So one stream reaches min(rate, window/RTT), as over a
// long fat network, and several streams share the rate. Stall and Reset
// cut connections for resume tests.
package linkem

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Link is the emulated path.
type Link struct {
	// Rate of the bottleneck in bytes per second (0: unlimited).
	Rate float64
	// RTT is the round trip time; Jitter a random extra one-way delay of up
	// to that much per chunk (order is kept, as TCP does).
	RTT, Jitter time.Duration
	// Window bounds one connection's bytes in flight (default 4 MiB, the
	// Linux default maximum send buffer).
	Window int
	// Queue is the bottleneck buffer in bytes (default one RTT at the rate
	// or 1 MiB): a sender that fills it waits.
	Queue int
}

// Proxy forwards connections from its address to a target across a Link.
type Proxy struct {
	Link   Link
	Target string
	Log    *slog.Logger

	ln     net.Listener
	mu     sync.Mutex
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
	up     *pipeShare
	down   *pipeShare
	closed bool
}

// pipeShare is the bottleneck of one direction, shared by every
// connection: when the transmitter is free again.
type pipeShare struct {
	mu     sync.Mutex
	nextTx time.Time
}

// Start listens on addr ("127.0.0.1:0") and forwards to target.
func Start(addr, target string, link Link) (*Proxy, error) {
	if link.Window <= 0 {
		link.Window = 4 << 20
	}
	if link.Queue <= 0 {
		link.Queue = max(1<<20, int(link.Rate*link.RTT.Seconds()))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{Link: link, Target: target, ln: ln, conns: map[net.Conn]bool{}, up: &pipeShare{}, down: &pipeShare{}, Log: slog.Default()}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's address.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops the proxy and cuts every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

// Reset cuts every open connection at once (a network failure); new ones
// are accepted.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST, not FIN
		}
		c.Close()
	}
}

func (p *Proxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on && p.closed {
		return false
	}
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *Proxy) serve(c net.Conn) {
	s, err := net.Dial("tcp", p.Target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, true) || !p.track(s, true) {
		c.Close()
		s.Close()
		return
	}
	defer p.track(c, false)
	defer p.track(s, false)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(ctx, c, s, p.up); s.(*net.TCPConn).CloseWrite() })
	wg.Go(func() { p.pipe(ctx, s, c, p.down); c.(*net.TCPConn).CloseWrite() })
	wg.Wait()
	cancel()
	c.Close()
	s.Close()
}

type chunk struct {
	b      []byte
	arrive time.Time
	acked  time.Time // when its ack would be back at the sender
}

// pipe carries one direction of a connection across the link.
func (p *Proxy) pipe(ctx context.Context, src, dst net.Conn, share *pipeShare) {
	l := p.Link
	oneWay := l.RTT / 2
	ch := make(chan chunk, 1<<12)
	var inflight []chunk // what the window counts
	var inBytes int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range ch {
			if d := time.Until(c.arrive); d > 0 {
				sleep(d)
			}
			if _, err := dst.Write(c.b); err != nil {
				for range ch {
				}
				return
			}
		}
	}()
	var lastArrive time.Time
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			b := append([]byte(nil), buf[:n]...)
			now := time.Now()
			// The window: wait until enough earlier bytes are acked.
			for len(inflight) > 0 && (inBytes+n > l.Window || !inflight[0].acked.After(now)) {
				if inflight[0].acked.After(now) {
					sleep(time.Until(inflight[0].acked))
					now = time.Now()
				}
				inBytes -= len(inflight[0].b)
				inflight = inflight[1:]
			}
			// The bottleneck: transmit after what is queued before us;
			// wait while the queue is full.
			share.mu.Lock()
			tx := now
			if share.nextTx.After(tx) {
				tx = share.nextTx
			}
			sent := tx
			if l.Rate > 0 {
				sent = tx.Add(time.Duration(float64(n) / l.Rate * float64(time.Second)))
				share.nextTx = sent
			}
			queued := tx.Sub(now).Seconds() * l.Rate
			share.mu.Unlock()
			if l.Rate > 0 && queued > float64(l.Queue) {
				sleep(time.Duration((queued - float64(l.Queue)) / l.Rate * float64(time.Second)))
			}
			arrive := sent.Add(oneWay)
			if l.Jitter > 0 {
				arrive = arrive.Add(time.Duration(rand.Int64N(int64(l.Jitter))))
			}
			if arrive.Before(lastArrive) {
				arrive = lastArrive
			}
			lastArrive = arrive
			c := chunk{b: b, arrive: arrive, acked: arrive.Add(oneWay)}
			inflight = append(inflight, c)
			inBytes += n
			select {
			case ch <- c:
			case <-ctx.Done():
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.Log.Debug("linkem: read", "error", err)
			}
			break
		}
	}
	close(ch)
	<-done
}

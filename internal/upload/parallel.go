package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Parallel streams. One TCP connection carries at most its window per
// round trip, so on a long fat link (tens of ms to the facility) a single
// stream leaves most of the link idle. A large file then goes as several
// partial uploads sent at once, each resumable on its own, and the server
// joins them into the final upload (tus concatenation), checking the
// SHA-256 of the whole. The number of streams follows the measured round
// trip (and, under a rate cap, the rate one stream was measured to reach).
// The agent's ledger keeps the parts' URLs (one string, partsPrefix and
// the URLs), so a restarted agent resumes each part where it stopped.

const (
	partsPrefix = "parts:"
	// minPart is the smallest part worth its own stream.
	minPart = 16 << 20
	// streamRTT: one more stream for each this much round trip.
	streamRTT = 10 * time.Millisecond
)

// errStartOver: the first part of a file sent in parallel vanished; the
// others were written into its file, so every part goes again.
var errStartOver = fmt.Errorf("the first part vanished: %w", ErrGone)

// linkProbe is what the client measured of the server's link.
type linkProbe struct {
	at     time.Time
	rtt    time.Duration
	concat bool // the server joins partial uploads
}

// probeLink measures the round trip to the server (the fastest of a few
// OPTIONS requests on one connection) and whether it takes
// concatenation; remembered for a minute.
func (c *Client) probeLink(ctx context.Context) linkProbe {
	c.comp.mu.Lock()
	p := c.comp.probe
	c.comp.mu.Unlock()
	if !p.at.IsZero() && time.Since(p.at) < time.Minute {
		return p
	}
	p = linkProbe{at: time.Now(), rtt: time.Hour}
	for range 3 {
		req, err := http.NewRequestWithContext(ctx, http.MethodOptions, c.endpoint(), nil)
		if err != nil {
			return linkProbe{}
		}
		t0 := time.Now()
		resp, err := c.do(req)
		if err != nil {
			return linkProbe{}
		}
		p.rtt = min(p.rtt, time.Since(t0))
		p.concat = strings.Contains(resp.Header.Get("Tus-Extension"), "concatenation")
		c.comp.noteServer(resp.Header)
		drain(resp)
	}
	c.comp.mu.Lock()
	c.comp.probe = p
	c.comp.mu.Unlock()
	return p
}

// streamsFor is how many streams a file of size bytes goes in.
func (c *Client) streamsFor(ctx context.Context, size int64) int {
	most := c.MaxStreams
	if most == 0 {
		most = 8
	}
	if most <= 1 || size < 2*minPart {
		return 1
	}
	if c.Streams > 0 {
		return max(1, min(c.Streams, int(size/minPart)))
	}
	p := c.probeLink(ctx)
	if !p.concat || p.rtt < 5*time.Millisecond {
		return 1
	}
	n := int(math.Ceil(float64(p.rtt) / float64(streamRTT)))
	// Under a rate cap, no more streams than the cap needs at the rate one
	// stream was measured to reach.
	if lim := c.limiter(); lim != nil && lim.Rate() > 0 {
		if one := c.comp.link(); one > 0 {
			n = min(n, int(math.Ceil(1.25*lim.Rate()/one)))
		}
	}
	return max(1, min(n, most, int(size/minPart)))
}

// uploadParallel sends f as parts at once and joins them into the final
// upload, whose URL it returns. uploadURL, when not empty, names the parts
// of an earlier try; else the file goes in streams new parts.
func (c *Client) uploadParallel(ctx context.Context, f io.ReaderAt, size int64, uploadURL string, streams int, meta map[string]string, saveURL func(string) error) (string, error) {
	for try := 0; ; try++ {
		parts := strings.Fields(strings.TrimPrefix(uploadURL, partsPrefix))
		if len(parts) == 0 {
			var err error
			if parts, err = c.createParts(ctx, size, streams, meta); err != nil {
				return "", err // the parts made are swept by the server
			}
			uploadURL = partsPrefix + strings.Join(parts, " ")
			if err := saved(saveURL(uploadURL)); err != nil {
				return "", err
			}
		}
		streams = len(parts) // a second try makes as many
		final, err := c.sendParts(ctx, f, size, parts, meta, func(i int, u string) error {
			parts[i] = u
			uploadURL = partsPrefix + strings.Join(parts, " ")
			return saveURL(uploadURL)
		})
		if errors.Is(err, ErrGone) && try == 0 && ctx.Err() == nil {
			// A part vanished, or the parts did not hash to the file:
			// once more, with new parts.
			uploadURL = ""
			continue
		}
		if err != nil {
			// The parts, for the caller to resume.
			return uploadURL, err
		}
		return final, nil
	}
}

// partRange is the byte range of part i of n of a file of size bytes.
func partRange(size int64, i, n int) (start, length int64) {
	start = size * int64(i) / int64(n)
	return start, size*int64(i+1)/int64(n) - start
}

func (c *Client) createParts(ctx context.Context, size int64, n int, meta map[string]string) ([]string, error) {
	parts := make([]string, n)
	for i := range n {
		u, err := c.createPart(ctx, size, i, n, parts[0], meta)
		if err != nil {
			return nil, err
		}
		parts[i] = u
	}
	return parts, nil
}

// createPart creates part i of n of a file of size bytes, which the server
// writes in place (into the file the parts will be joined into; first is
// the first part's URL). It carries the file's metadata (the server checks
// it as for any upload).
func (c *Client) createPart(ctx context.Context, size int64, i, n int, first string, meta map[string]string) (string, error) {
	start, length := partRange(size, i, n)
	m := maps.Clone(meta)
	m[MetaPartWhole] = strconv.FormatInt(size, 10)
	m[MetaPartAt] = strconv.FormatInt(start, 10)
	if i > 0 {
		m[MetaPartOf] = first[strings.LastIndex(first, "/")+1:]
	}
	return c.create(ctx, length, m, "partial")
}

// sendParts sends every part on its own stream, then creates the final
// upload. resave records a part that had to be created again.
func (c *Client) sendParts(ctx context.Context, f io.ReaderAt, size int64, parts []string, meta map[string]string, resave func(int, string) error) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	first := parts[0] // never made again (see below)
	for i, u := range parts {
		start, length := partRange(size, i, len(parts))
		wg.Add(1)
		go func() {
			defer wg.Done()
			create := func(ctx context.Context) (string, error) {
				if i == 0 {
					// The others are written into the first's file:
					// all of them go again.
					return "", errStartOver
				}
				u, err := c.createPart(ctx, size, i, len(parts), first, meta)
				if err != nil {
					return "", err
				}
				mu.Lock()
				defer mu.Unlock()
				return u, saved(resave(i, u))
			}
			if _, err := c.resumable(ctx, io.NewSectionReader(f, start, length), length, u, create); err != nil {
				errs[i] = fmt.Errorf("part %d of %d: %w", i+1, len(parts), err)
				cancel() // a part that cannot go stops the others
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	mu.Lock()
	list := strings.Join(parts, " ")
	mu.Unlock()
	// The final upload, retried like any request until it is answered.
	backoff := 200 * time.Millisecond
	for {
		t0 := time.Now()
		u, err := c.create(ctx, 0, meta, "final;"+list)
		c.comp.join.Add(int64(time.Since(t0)))
		if err == nil {
			return u, nil
		}
		if errors.Is(err, ErrRejected) || errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrGone) || ctx.Err() != nil {
			return "", err
		}
		if err := pause(ctx, &backoff); err != nil {
			return "", err
		}
	}
}

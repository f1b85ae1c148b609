// Package upload is the agent's side of the resumable upload protocol (tus
// 1.0: create, then PATCH from the server's offset, resuming after any
// interruption), with two extensions of its own: zstd compression of PATCH
// bodies when it makes the transfer faster (compress.go), and one file sent
// as several concurrent parts joined by tus concatenation on long fat links
// (parallel.go). The server side is upload/tusserver.
package upload

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/replicas"
)

// Errors.
var (
	// ErrGone means the server no longer has the upload (finished and moved,
	// expired, or never existed); start a new one.
	ErrGone = errors.New("upload gone")
	// ErrRejected means the server refused the upload for good (bad
	// metadata, too large, unauthorised).
	ErrRejected = errors.New("upload rejected")
	// ErrUnauthorized means the server refused the client's token (401,
	// 403): nothing is wrong with the file; fix the token and try again.
	ErrUnauthorized = errors.New("the server refuses this token")
)

// ValidSHA256 reports whether s is a SHA-256 as uploads carry it: 64
// lowercase hex digits.
func ValidSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Metadata keys the server understands.
const (
	MetaFilename   = "filename"
	MetaSHA256     = "sha256"
	MetaFlow       = "flow"
	MetaAgent      = "agent"
	MetaInstrument = "instrument"
	MetaSourcePath = "source_path"
	MetaProposal   = "proposal" // the experiment's proposal or project
	MetaSample     = "sample"
	// The experiment as the instrument side describes it (agent settings
	// per folder, or a sidecar file beside the data).
	MetaOperator    = "operator"
	MetaDescription = "description"
	MetaKeywords    = "keywords" // comma-separated
	MetaLicense     = "license"
	MetaDerivedFrom = "derived_from" // the SHA-256 of the raw data this file was made from
	MetaReceivedAt  = "received_at"  // set by the server
	MetaOwner       = "owner"        // set by the server: the creating token's subject
	// A part of a file sent in parallel streams that the server writes
	// in place, into the file it will be part of (no copy when the parts
	// are joined): the whole file's length, where the part starts in it,
	// and (on every part but the first) the first part's upload ID.
	MetaPartWhole = "part_whole"
	MetaPartAt    = "part_at"
	MetaPartOf    = "part_of"
)

const tusVersion = "1.0.0"

// Client talks tus 1.0 to one server endpoint, or to the same endpoint on
// several server replicas.
type Client struct {
	// Endpoint is the creation URL, e.g. https://host/files/.
	Endpoint string
	// Replicas, when set, replaces Endpoint: uploads are created at
	// Files (default "/files/") under the current replica, and an upload
	// whose replica cannot be reached goes on at the next, from the
	// offset that one reports (replicas share their uploads).
	Replicas *replicas.Set
	Files    string
	// Token is sent as a bearer token.
	Token string
	// HTTP defaults to a client without an overall timeout (uploads are
	// long); stalls are caught by the transport's timeouts.
	HTTP *http.Client
	// MaxBytesPerSecond caps the upload rate (0: no cap), so acquisition
	// never competes with a full network link; Limiter, when set, paces all
	// uploads of the client together instead (and may change its rate).
	MaxBytesPerSecond int64
	Limiter           *Limiter
	// Compress says when PATCH bodies are compressed (default: when it
	// makes the transfer faster, see compress.go); CompressThreads is how
	// many threads compress (0: a quarter of the CPUs, at least one).
	Compress        CompressMode
	CompressThreads int
	// MaxStreams bounds the parallel streams of one file (0: 8; 1: one
	// stream always); Streams, when set, is the number for every file of
	// 32 MiB or more instead of one chosen from the round trip.
	MaxStreams, Streams int

	comp compression
}

// limiter is the rate limiter of the client's uploads, nil when none.
func (c *Client) limiter() *Limiter {
	if c.Limiter == nil && c.MaxBytesPerSecond > 0 {
		c.comp.mu.Lock()
		defer c.comp.mu.Unlock()
		if c.comp.ownLimiter == nil {
			c.comp.ownLimiter = NewLimiter(float64(c.MaxBytesPerSecond))
		}
		return c.comp.ownLimiter
	}
	return c.Limiter
}

// defaultHTTP writes request bodies through a large buffer: with the
// standard 4 KiB one, a loopback upload spends most of its time in syscalls.
var defaultHTTP = &http.Client{Transport: NewTransport()}

// NewTransport returns an HTTP transport tuned for large uploads.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.WriteBufferSize = 1 << 20
	t.ReadBufferSize = 64 << 10
	t.ResponseHeaderTimeout = 5 * time.Minute
	return t
}

func (c *Client) http() *http.Client { return cmp.Or(c.HTTP, defaultHTTP) }

// endpoint is the creation URL on the current replica.
func (c *Client) endpoint() string {
	if c.Replicas == nil {
		return c.Endpoint
	}
	return c.Replicas.Current() + cmp.Or(c.Files, "/files/")
}

func (c *Client) do(req *http.Request) (*http.Response, error) {
	req.Header.Set("Tus-Resumable", tusVersion)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return c.http().Do(req)
}

// Ping asks the server what it takes (an OPTIONS request), which also
// keeps the client's connection to it open: an agent that pings while it
// waits for files sends the next one on that connection, without a new
// TCP (and TLS) handshake, 1-3 round trips of the link.
func (c *Client) Ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, c.endpoint(), nil)
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	resp, err := c.do(req)
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	defer drain(resp)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("ping: %w", statusError(resp))
	}
	c.comp.noteServer(resp.Header)
	return nil
}

// Create starts an upload of size bytes and returns its URL.
func (c *Client) Create(ctx context.Context, size int64, meta map[string]string) (string, error) {
	return c.create(ctx, size, meta, "")
}

// create starts an upload; concat, when set, is its Upload-Concat
// ("partial", or "final;" and the parts' URLs, when size is not sent).
func (c *Client) create(ctx context.Context, size int64, meta map[string]string, concat string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint(), nil)
	if err != nil {
		return "", fmt.Errorf("create upload: %w", err)
	}
	if !strings.HasPrefix(concat, "final;") {
		req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	}
	if concat != "" {
		req.Header.Set("Upload-Concat", concat)
	}
	req.Header.Set("Upload-Metadata", EncodeMetadata(meta))
	resp, err := c.do(req)
	if err != nil {
		return "", fmt.Errorf("create upload: %w", err)
	}
	defer drain(resp)
	loc, err := c.created(resp)
	if err != nil {
		return "", fmt.Errorf("create upload: %w", err)
	}
	return loc, nil
}

// created reads the answer to a creation: the new upload's URL, and what
// the server says it takes.
func (c *Client) created(resp *http.Response) (string, error) {
	if resp.StatusCode != http.StatusCreated {
		return "", statusError(resp)
	}
	c.comp.noteServer(resp.Header)
	loc, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("no location: %w", err)
	}
	return loc.String(), nil
}

// Offset asks the server how many bytes of the upload it has.
func (c *Client) Offset(ctx context.Context, uploadURL string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, uploadURL, nil)
	if err != nil {
		return 0, fmt.Errorf("upload offset: %w", err)
	}
	resp, err := c.do(req)
	if err != nil {
		return 0, fmt.Errorf("upload offset: %w", err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return 0, fmt.Errorf("upload offset: %w", statusError(resp))
	}
	c.comp.noteServer(resp.Header)
	off, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || off < 0 {
		return 0, fmt.Errorf("upload offset: bad Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	return off, nil
}

// Send streams the file from offset to the end in one PATCH and returns the
// new offset. On error the caller asks Offset and calls Send again.
func (c *Client) Send(ctx context.Context, uploadURL string, f io.ReaderAt, offset, size int64) (int64, error) {
	return c.send(ctx, uploadURL, f, offset, size, plan{})
}

// send sends the bytes [offset, end) of f in one PATCH, zstd-compressed
// as p says, and returns the server's new offset.
func (c *Client) send(ctx context.Context, uploadURL string, f io.ReaderAt, offset, end int64, p plan) (int64, error) {
	req, done, err := c.bodyRequest(ctx, http.MethodPatch, uploadURL, f, offset, end, p)
	if err != nil {
		return offset, fmt.Errorf("send upload: %w", err)
	}
	defer done()
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	t0 := time.Now()
	resp, err := c.doSending(req)
	if err != nil {
		return offset, fmt.Errorf("send upload: %w", err)
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return offset, fmt.Errorf("send upload: %w", statusError(resp))
	}
	off, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		return offset, fmt.Errorf("send upload: bad Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	if !p.compress {
		c.comp.sentRaw(off-offset, time.Since(t0))
	}
	return off, nil
}

// bodyRequest is a request of method to url whose body is the bytes
// [offset, end) of f, zstd-encoded when compress is set (head, when not
// nil, its first frame compressed already), and paced by the client's
// rate cap; done ends the compression.
func (c *Client) bodyRequest(ctx context.Context, method, url string, f io.ReaderAt, offset, end int64, p plan) (req *http.Request, done func(), err error) {
	var body io.Reader = io.NewSectionReader(f, offset, end-offset)
	length := end - offset
	done = func() {}
	compress := p.compress
	if compress {
		cb := c.compressedBody(ctx, f, offset, end, c.threads(), frameSize(end-offset), p.head, c.storeWhenIdle(p))
		body, length, done = cb, -1, func() { cb.Close() }
	}
	if lim := c.limiter(); lim != nil {
		body = &limited{r: body, l: lim, ctx: ctx}
	}
	req, err = http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		done()
		return nil, nil, err
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	if compress {
		req.Header.Set("Content-Encoding", "zstd")
		req.Header.Set(HeaderDecodedLength, strconv.FormatInt(end-offset, 10))
	}
	return req, done, nil
}

// doSending sends a request that carries upload bytes, counted among the
// client's streams while it does.
func (c *Client) doSending(req *http.Request) (*http.Response, error) {
	c.comp.streams.Add(1)
	defer c.comp.streams.Add(-1)
	return c.do(req)
}

// sendFile sends [off, size) of f, planning compression (a raw probe
// first when the link's rate is not known), and returns the new offset.
// planned, when not nil, is the plan made for off already.
func (c *Client) sendFile(ctx context.Context, uploadURL string, f io.ReaderAt, off, size int64, planned *plan) (int64, error) {
	var p plan
	if planned != nil {
		p = *planned
	} else {
		p = c.planFile(f, off, size)
	}
	var err error
	if p.probe {
		if off, err = c.send(ctx, uploadURL, f, off, off+probeBytes, plan{}); err != nil {
			return off, err
		}
		p.head = nil // it was the probe's
		p.compress = c.worthIt(p, c.comp.link(), size-off)
	}
	for start := off; off < size && err == nil; {
		if off != start {
			p.head = nil // it was the first try's
		}
		off, err = c.send(ctx, uploadURL, f, off, size, p)
	}
	return off, err
}

// Upload sends a whole file, resuming at uploadURL when it is not empty. It
// calls saveURL with a new upload's URL before sending data, so a restarted
// agent can resume it. It retries transient errors with backoff until ctx
// ends, and returns the URL of the finished upload. On a long fat link a
// large file goes as several parts at once (parallel.go); uploadURL then
// names the parts.
func (c *Client) Upload(ctx context.Context, path, uploadURL string, meta map[string]string, saveURL func(string) error) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return uploadURL, fmt.Errorf("upload %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return uploadURL, fmt.Errorf("upload %s: %w", path, err)
	}
	size := fi.Size()
	streams := 0 // the parts of uploadURL
	if uploadURL == "" {
		streams = c.streamsFor(ctx, size)
	}
	if strings.HasPrefix(uploadURL, partsPrefix) || streams > 1 {
		u, err := c.uploadParallel(ctx, f, size, uploadURL, streams, meta, saveURL)
		if err != nil {
			return u, fmt.Errorf("upload %s: %w", path, err)
		}
		return u, nil
	}
	if uploadURL == "" && size <= createBodyMax && c.comp.createsWithBody() {
		// Created with its bytes; where that fails short of an answer,
		// created bare below (the first try's upload, whose URL was not
		// learnt, is left to the server's sweep).
		u, off, err := c.createWithBody(ctx, f, size, meta)
		switch {
		case err == nil:
			if err := saved(saveURL(u)); err != nil {
				return u, fmt.Errorf("upload %s: %w", path, err)
			}
			if off == size {
				return u, nil
			}
			uploadURL = u
		case errors.Is(err, ErrRejected) || errors.Is(err, ErrUnauthorized) || ctx.Err() != nil:
			return "", fmt.Errorf("upload %s: %w", path, err)
		}
	}
	create := func(ctx context.Context) (string, error) {
		u, err := c.Create(ctx, size, meta)
		if err != nil {
			return "", err
		}
		return u, saved(saveURL(u))
	}
	u, err := c.resumable(ctx, f, size, uploadURL, create)
	if err != nil {
		return u, fmt.Errorf("upload %s: %w", path, err)
	}
	return u, nil
}

// resumable sends src (size bytes) to the upload at uploadURL, or to one
// made by create when there is none or it is gone, retrying transient
// errors with backoff (and moving to the next replica) until ctx ends.
func (c *Client) resumable(ctx context.Context, src io.ReaderAt, size int64, uploadURL string, create func(context.Context) (string, error)) (string, error) {
	backoff := 200 * time.Millisecond
	moves := 0 // replicas tried since the last backoff
	// A new upload's compression is planned while it is being created
	// (the sample reads and compresses a few MiB; the creation is a round
	// trip), once the server's encodings are known.
	var early chan plan
	if uploadURL == "" && c.comp.serverKnown() {
		early = make(chan plan, 1)
		go func() { early <- c.planFile(src, 0, size) }()
	}
	for {
		base := ""
		if c.Replicas != nil {
			base = c.Replicas.Current()
			if uploadURL != "" {
				uploadURL = c.Replicas.Rebase(uploadURL, base)
			}
		}
		err := func() error {
			var off int64 // a new upload's offset is 0: no need to ask
			if uploadURL == "" {
				u, err := create(ctx)
				if err != nil {
					return err
				}
				uploadURL = u
			} else {
				var err error
				off, err = c.Offset(ctx, uploadURL)
				if errors.Is(err, ErrGone) {
					uploadURL = ""
					return err
				}
				if err != nil {
					return err
				}
			}
			var p *plan
			if early != nil && off == 0 {
				pl := <-early
				p, early = &pl, nil
			}
			_, err := c.sendFile(ctx, uploadURL, src, off, size, p)
			return err
		}()
		if err == nil {
			return uploadURL, nil
		}
		if errors.Is(err, ErrRejected) || errors.Is(err, ErrUnauthorized) || errors.Is(err, errStartOver) || ctx.Err() != nil {
			return uploadURL, err
		}
		if c.Replicas != nil && replicas.Unreachable(err) && moves < c.Replicas.Len()-1 {
			// Straight on at the next replica; once all were tried, wait.
			if c.Replicas.Failed(base, err) != base {
				moves++
				continue
			}
		}
		moves = 0
		if err := pause(ctx, &backoff); err != nil {
			return uploadURL, err
		}
	}
}

// pause waits out a retry's backoff, doubling it up to 30 s, or until ctx
// ends.
func pause(ctx context.Context, backoff *time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(*backoff):
	}
	*backoff = min(2**backoff, 30*time.Second)
	return nil
}

// saved wraps the error of recording an upload's URL: without the URL the
// upload cannot be resumed, so it is not sent.
func saved(err error) error {
	if err != nil {
		return fmt.Errorf("%w: save upload url: %w", ErrRejected, err)
	}
	return nil
}

func statusError(resp *http.Response) error {
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	text := strings.TrimSpace(string(msg))
	switch resp.StatusCode {
	case http.StatusNotFound, http.StatusGone, 460:
		// 460: the parts of a parallel upload do not hash to the file's
		// SHA-256; they are sent again.
		return fmt.Errorf("%w: %s %s", ErrGone, resp.Status, text)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w: %s %s", ErrUnauthorized, resp.Status, text)
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusConflict, http.StatusUnprocessableEntity:
		// 409 is an offset mismatch: resumable by asking for the offset again.
		if resp.StatusCode == http.StatusConflict {
			return fmt.Errorf("%s %s", resp.Status, text)
		}
		return fmt.Errorf("%w: %s %s", ErrRejected, resp.Status, text)
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		// A proxy in front of a replica that is down: try the next.
		return fmt.Errorf("%w: %s %s", replicas.ErrUnavailable, resp.Status, text)
	}
	return fmt.Errorf("%s %s", resp.Status, text)
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
}

// EncodeMetadata writes tus Upload-Metadata (keys sorted for stable output).
func EncodeMetadata(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+" "+base64.StdEncoding.EncodeToString([]byte(m[k])))
	}
	return strings.Join(parts, ",")
}

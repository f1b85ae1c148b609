package upload

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// createBodyMax is the largest file sent in the POST that creates its
// upload (a server that says HeaderCreateWithBody): a round trip saved
// per file, which on a long link is most of a small file's transfer. A
// larger file is created first, so its URL is saved before its bytes go
// and a cut transfer resumes where it stopped; a small one cut short is
// sent again.
const createBodyMax = 8 << 20

// createsWithBody reports whether the server takes bodies in creations.
func (c *compression) createsWithBody() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.createBody
}

// createWithBody creates the upload of f (size bytes) with its bytes in
// the same request, compressed where that is faster, and returns its URL
// and the offset the server reached.
func (c *Client) createWithBody(ctx context.Context, f io.ReaderAt, size int64, meta map[string]string) (string, int64, error) {
	p := c.planFile(f, 0, size)
	req, done, err := c.bodyRequest(ctx, http.MethodPost, c.endpoint(), f, 0, size, p)
	if err != nil {
		return "", 0, fmt.Errorf("create upload: %w", err)
	}
	defer done()
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	req.Header.Set("Upload-Metadata", EncodeMetadata(meta))
	t0 := time.Now()
	resp, err := c.doSending(req)
	if err != nil {
		return "", 0, fmt.Errorf("create upload: %w", err)
	}
	defer drain(resp)
	loc, err := c.created(resp)
	if err != nil {
		return "", 0, fmt.Errorf("create upload: %w", err)
	}
	off, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || off < 0 || off > size {
		return "", 0, fmt.Errorf("create upload: bad Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	if !p.compress {
		c.comp.sentRaw(off, time.Since(t0))
	}
	return loc, off, nil
}

// supportsBody reports whether the header of a response says the server
// takes upload bytes in a creation.
func supportsBody(h interface{ Get(string) string }) bool {
	return strings.TrimSpace(h.Get(HeaderCreateWithBody)) != ""
}

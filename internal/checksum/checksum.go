// Package checksum computes the SHA-256 that identifies a file's content
// everywhere in picoflow: computed once at the instrument, verified at the
// server, recorded in the catalogue. Standard library only (the agent uses
// it).
package checksum

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
)

// File returns the hex SHA-256 of the file at path and its length. It
// reads in 1 MiB blocks and stops when ctx is done.
func File(ctx context.Context, path string) (sum string, n int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", n, err
		}
		k, err := f.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			return hex.EncodeToString(h.Sum(nil)), n, nil
		}
		if err != nil {
			return "", n, err
		}
	}
}

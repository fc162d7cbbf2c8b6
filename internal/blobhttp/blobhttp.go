// Package blobhttp serves a stored blob's plaintext over HTTP, the one
// piece of code both doors that send blobs use: the OCI /v2/ blob GET and
// the presigned layer download. It parses single-range requests, reads and
// authenticates the first chunk before committing to a status line (so a
// corrupt object fails with the door's clear error), then streams; a
// failure after the status line cuts the connection, so a client never
// receives altered or short content as a complete response.
package blobhttp

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// FirstChunk is how much plaintext Serve reads before it sends a status.
const FirstChunk = 64 << 10

// ErrUnsatisfiable reports a single range outside the entity.
var ErrUnsatisfiable = errors.New("range not satisfiable")

// ParseRange interprets a Range header for an entity of size bytes. It
// returns ok=false when the whole entity should be served (no header, a
// syntactically invalid one, or several ranges: RFC 9110 lets a server
// ignore those), and ErrUnsatisfiable for a single range outside it.
func ParseRange(h string, size int64) (off, n int64, ok bool, err error) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") || len(spec) > 64 {
		return 0, 0, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, nil
	}
	if first == "" { // suffix: the last N bytes
		k, perr := strconv.ParseInt(last, 10, 64)
		if perr != nil || k < 0 {
			return 0, 0, false, nil
		}
		if k == 0 || size == 0 {
			return 0, 0, false, ErrUnsatisfiable
		}
		k = min(k, size)
		return size - k, k, true, nil
	}
	a, perr := strconv.ParseInt(first, 10, 64)
	if perr != nil || a < 0 {
		return 0, 0, false, nil
	}
	b := size - 1
	if last != "" {
		b, perr = strconv.ParseInt(last, 10, 64)
		if perr != nil || b < a {
			return 0, 0, false, nil
		}
		b = min(b, size-1)
	}
	if a >= size {
		return 0, 0, false, ErrUnsatisfiable
	}
	return a, b - a + 1, true, nil
}

// Blob is what Serve needs to answer for one blob.
type Blob struct {
	Size int64
	// Open returns the plaintext [off, off+n); a read that reaches the end
	// without error has proven the content (the envelope's binding).
	Open func(off, n int64) (io.ReadCloser, error)
	// Headers sets the door's success headers (digest, ETag, type, ...).
	Headers func(http.Header)
	// Unsatisfiable is the door's error for a range outside the blob;
	// Serve adds Content-Range: bytes */size to the response headers.
	Unsatisfiable func() error
	// Abort is told of a failure after the status line, just before the
	// connection is cut.
	Abort func(error)
}

// Serve answers a HEAD or GET (with an optional single Range) for b. It
// returns the door's errors before any byte is sent; after that it either
// completes or cuts the connection (panic(http.ErrAbortHandler)).
func Serve(w http.ResponseWriter, r *http.Request, b Blob) error {
	hdr := w.Header()
	if r.Method == http.MethodHead {
		b.Headers(hdr)
		hdr.Set("Content-Length", strconv.FormatInt(b.Size, 10))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	status, off, n := http.StatusOK, int64(0), b.Size
	contentRange := ""
	if rh := r.Header.Get("Range"); rh != "" {
		o, k, ok, err := ParseRange(rh, b.Size)
		if errors.Is(err, ErrUnsatisfiable) {
			hdr.Set("Content-Range", fmt.Sprintf("bytes */%d", b.Size))
			return b.Unsatisfiable()
		}
		if ok {
			status, off, n = http.StatusPartialContent, o, k
			contentRange = fmt.Sprintf("bytes %d-%d/%d", o, o+k-1, b.Size)
		}
	}
	rc, err := b.Open(off, n)
	if err != nil {
		return err
	}
	defer rc.Close()
	buf := make([]byte, min(n, FirstChunk))
	k, err := io.ReadFull(rc, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	if int64(k) == n { // whole content read: make sure the final check ran
		if _, err := rc.Read(make([]byte, 1)); err != nil && err != io.EOF {
			return err
		}
	}
	// Only now, with the first bytes authenticated, describe a success.
	b.Headers(hdr)
	if contentRange != "" {
		hdr.Set("Content-Range", contentRange)
	}
	hdr.Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(status)
	if _, err := w.Write(buf[:k]); err != nil {
		return nil // client went away
	}
	// writerOnly hides the ResponseWriter's ReadFrom, whose 32 KiB copies
	// cost more per byte than one 256 KiB buffer.
	if _, err := io.CopyBuffer(struct{ io.Writer }{w}, rc, make([]byte, 256<<10)); err != nil {
		if b.Abort != nil {
			b.Abort(err)
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}

package s3

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
)

// faultProxy is a reverse proxy in front of versitygw that counts the S3
// operations passing through, records the SSE header they carry, and can
// fail the next requests of an operation instead of forwarding them.
type faultProxy struct {
	url string

	mu     sync.Mutex
	counts map[string]int
	sse    map[string]string  // operation -> last x-amz-server-side-encryption
	faults map[string][]fault // operation -> faults for its next requests
}

// fault is how the proxy fails a request.
type fault int

const (
	faultSlowDown fault = iota // 503 SlowDown, S3's throttling answer
	faultInternal              // 500 InternalError
	faultReset                 // connection reset halfway through the body
)

func (f fault) String() string {
	return [...]string{"SlowDown", "InternalError", "reset"}[f]
}

func newFaultProxy(t *testing.T) *faultProxy {
	t.Helper()
	target, err := url.Parse(gw.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target) // keeps the signed Host header
	rp.ErrorLog = log.New(io.Discard, "", 0)
	p := &faultProxy{
		counts: make(map[string]int),
		sse:    make(map[string]string),
		faults: make(map[string][]fault),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := operation(r)
		p.mu.Lock()
		p.counts[op]++
		if v := r.Header.Get("X-Amz-Server-Side-Encryption"); v != "" {
			p.sse[op] = v
		}
		var f fault = -1
		if q := p.faults[op]; len(q) > 0 {
			f, p.faults[op] = q[0], q[1:]
		}
		p.mu.Unlock()
		if f >= 0 {
			inject(w, r, f)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// failNext makes the next len(faults) requests of op fail in those ways.
func (p *faultProxy) failNext(op string, faults ...fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[op] = append(p.faults[op], faults...)
}

func (p *faultProxy) count(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[op]
}

func (p *faultProxy) sseHeader(op string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sse[op]
}

func (p *faultProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.counts)
	clear(p.sse)
	clear(p.faults)
}

// operation names the S3 operation of a request.
func operation(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPut && q.Has("partNumber") && q.Has("uploadId"):
		return "UploadPart"
	case r.Method == http.MethodPut:
		return "PutObject"
	case r.Method == http.MethodPost && q.Has("uploads"):
		return "CreateMultipartUpload"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return "CompleteMultipartUpload"
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		return "AbortMultipartUpload"
	case r.Method == http.MethodDelete:
		return "DeleteObject"
	case r.Method == http.MethodGet && q.Has("uploads"):
		return "ListMultipartUploads"
	case r.Method == http.MethodGet && q.Has("list-type"):
		return "ListObjectsV2"
	case r.Method == http.MethodGet:
		return "GetObject"
	case r.Method == http.MethodHead:
		return "HeadObject"
	}
	return r.Method
}

func inject(w http.ResponseWriter, r *http.Request, f fault) {
	if f == faultReset {
		// Take part of the body, then drop the connection with a RST.
		io.CopyN(io.Discard, r.Body, 64<<10)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		conn.Close()
		return
	}
	io.Copy(io.Discard, r.Body)
	status := http.StatusServiceUnavailable
	if f == faultInternal {
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<Error><Code>%s</Code><Message>injected by the test proxy</Message><RequestId>fault</RequestId></Error>`, f)
}

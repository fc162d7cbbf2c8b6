package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"log/slog"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/auth"
)

type flakyHook struct {
	fail    atomic.Bool
	records atomic.Int64
	last    atomic.Value // audit.Outcome
}

func (h *flakyHook) Record(ctx context.Context, info *auth.Info, out audit.Outcome) error {
	if h.fail.Load() {
		return errors.New("disk full")
	}
	h.records.Add(1)
	h.last.Store(out)
	return nil
}

// Issue #8's fail-closed contract, pipeline side: a response whose audit
// record cannot be made durable is never sent; the client gets 503.
func TestAuditGateFailsClosed(t *testing.T) {
	t.Parallel()
	hook := &flakyHook{}
	reached := atomic.Int64{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.Header().Set("Docker-Content-Digest", "sha256:secret-of-success")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "created")
	})
	quiet := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}) // writes nothing
	p := newPipeline(pipelineConfig{
		Log: discardLog(), Audit: hook, Ready: func(context.Context) error { return nil },
		Routes: []mount{
			{prefix: "/v2", handler: handler, unavailable: ociUnavailable},
			{prefix: "/quiet", handler: quiet},
			{prefix: "/", family: "aws", handler: handler, unavailable: awsUnavailable},
		},
	})
	srv := httptest.NewServer(p)
	defer srv.Close()
	get := func(path string, hdr map[string]string) (*http.Response, string) {
		return post(t, srv.URL+path, hdr)
	}

	resp, body := get("/v2/x", nil)
	if resp.StatusCode != 201 || body != "created" || hook.records.Load() != 1 {
		t.Fatalf("healthy hook: %d %q records=%d", resp.StatusCode, body, hook.records.Load())
	}
	if out := hook.last.Load().(audit.Outcome); out.Status != 201 {
		t.Fatalf("recorded outcome %+v, want status 201", out)
	}

	hook.fail.Store(true)
	for _, tc := range []struct {
		path string
		hdr  map[string]string
		want string
	}{
		{"/v2/x", nil, `"code":"UNAVAILABLE"`},
		{"/", map[string]string{"X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.ListImages"}, "ServiceUnavailableException"},
		{"/", nil, "<Code>ServiceUnavailable</Code>"},
		{"/quiet", nil, "audit trail"},
	} {
		resp, body := get(tc.path, tc.hdr)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, tc.want) ||
			resp.Header.Get("Docker-Content-Digest") != "" || strings.Contains(body, "created") {
			t.Errorf("%s with a failing hook: %d %v %q", tc.path, resp.StatusCode, resp.Header, body)
		}
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

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
	"time"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/auth"
)

// recordingHook remembers the last audited outcome.
type recordingHook struct{ last atomic.Value }

func (h *recordingHook) Record(_ context.Context, _ *auth.Info, out audit.Outcome) error {
	h.last.Store(out)
	return nil
}

// TestBackendOutageAnswers503: a handler's 500 while the readiness probe
// fails becomes the door's own 503 with Retry-After (and is audited as
// such); with the backends up the 500 stays; the probe is cached.
func TestBackendOutageAnswers503(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	var pings atomic.Int32
	ready := func(context.Context) error {
		pings.Add(1)
		if down.Load() {
			return errors.New("metadata store: dial tcp 127.0.0.1:1: connection refused")
		}
		return nil
	}
	failing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Content-Digest", "sha256:never")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "internal detail")
	})
	fine := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	hook := &recordingHook{}
	p := newPipeline(pipelineConfig{
		Log: discardLog(), Audit: hook, Ready: ready,
		Routes: []mount{
			{prefix: "/v2", handler: failing, unavailable: ociUnavailable},
			{prefix: "/fine", handler: fine, unavailable: ociUnavailable},
			{prefix: "/plain", handler: failing},
			{prefix: "/", family: "aws", handler: failing, unavailable: awsUnavailable},
		},
	})
	srv := httptest.NewServer(p)
	defer srv.Close()
	do := func(path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		return post(t, srv.URL+path, hdr)
	}

	if resp, body := do("/v2/x", nil); resp.StatusCode != 500 || body != "internal detail" {
		t.Fatalf("backends up: %d %q, want the handler's 500", resp.StatusCode, body)
	}
	down.Store(true)
	time.Sleep(probeTTL) // the healthy answer expires
	for _, tc := range []struct {
		path string
		hdr  map[string]string
		want string
	}{
		{"/v2/x", nil, `{"errors":[{"code":"UNAVAILABLE","message":"` + backendUnavailable + `"}]}`},
		{"/", map[string]string{"X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.ListImages"}, `"__type":"ServiceUnavailableException"`},
		{"/", nil, "<Code>ServiceUnavailable</Code>"},
		{"/plain", nil, "service unavailable: " + backendUnavailable},
	} {
		resp, body := do(tc.path, tc.hdr)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, tc.want) ||
			resp.Header.Get("Docker-Content-Digest") != "" || strings.Contains(body, "internal detail") {
			t.Errorf("%s with a backend down: %d %v %q", tc.path, resp.StatusCode, resp.Header, body)
		}
		if out := hook.last.Load().(audit.Outcome); out.Status != 503 || out.ErrorCode != "ServiceUnavailable" {
			t.Errorf("%s audited as %+v, want the 503", tc.path, out)
		}
	}
	if n := pings.Load(); n > 3 {
		t.Errorf("%d probes for 5 failures within a second; want them cached", n)
	}
	// Requests that succeed never probe.
	before := pings.Load()
	if resp, body := do("/fine", nil); resp.StatusCode != 200 || body != "ok" || pings.Load() != before {
		t.Errorf("healthy route: %d %q, probes %d -> %d", resp.StatusCode, body, before, pings.Load())
	}
	// Back up: the next failure is a 500 again once the answer expires.
	down.Store(false)
	time.Sleep(probeTTL)
	if resp, _ := do("/v2/x", nil); resp.StatusCode != 500 {
		t.Errorf("backend back: %d, want 500", resp.StatusCode)
	}
}

// post sends an empty POST with headers and returns the response and its
// body.
func post(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

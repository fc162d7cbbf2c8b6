package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestPipelineMetrics: every request counts in its door's series, by
// method and status, for the usual methods (whose series the door keeps)
// and the others alike.
func TestPipelineMetrics(t *testing.T) {
	t.Parallel()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/missing" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "ok")
	})
	p := newPipeline(pipelineConfig{
		Log: discardLog(), Audit: &flakyHook{}, Ready: func(context.Context) error { return nil },
		Routes: []mount{{prefix: "/v2", handler: handler}, {prefix: "/", family: "aws", handler: handler}},
	})
	srv := httptest.NewServer(p)
	defer srv.Close()
	for _, req := range []struct{ method, path string }{
		{"GET", "/v2/x"}, {"GET", "/v2/x"}, {"GET", "/v2/missing"}, {"HEAD", "/v2/x"},
		{"PROPFIND", "/v2/x"}, {"POST", "/"},
	} {
		r, err := http.NewRequest(req.method, srv.URL+req.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var series []string
	for _, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(l, "coffer_http_requests_total{") || strings.HasPrefix(l, "coffer_http_request_duration_seconds_count{") ||
			strings.HasPrefix(l, "coffer_http_response_bytes_total{") {
			series = append(series, l)
		}
	}
	// "ok" twice, "404 page not found\n", "ok" (HEAD: written, not sent), "ok".
	want := []string{
		`coffer_http_request_duration_seconds_count{door="aws",method="POST"} 1`,
		`coffer_http_request_duration_seconds_count{door="v2",method="GET"} 3`,
		`coffer_http_request_duration_seconds_count{door="v2",method="HEAD"} 1`,
		`coffer_http_request_duration_seconds_count{door="v2",method="PROPFIND"} 1`,
		`coffer_http_requests_total{code="200",door="aws",method="POST"} 1`,
		`coffer_http_requests_total{code="200",door="v2",method="GET"} 2`,
		`coffer_http_requests_total{code="200",door="v2",method="HEAD"} 1`,
		`coffer_http_requests_total{code="200",door="v2",method="PROPFIND"} 1`,
		`coffer_http_requests_total{code="404",door="v2",method="GET"} 1`,
		`coffer_http_response_bytes_total{door="aws"} 2`,
		`coffer_http_response_bytes_total{door="v2"} 27`,
	}
	if !slices.Equal(series, want) {
		t.Errorf("metrics:\n%s\nwant\n%s", strings.Join(series, "\n"), strings.Join(want, "\n"))
	}
}

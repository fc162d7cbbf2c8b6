package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/auth"
)

// mount routes a path prefix (and everything below it) to a door.
type mount struct {
	prefix  string
	family  string // metrics label
	handler http.Handler
}

type pipelineConfig struct {
	Log    *slog.Logger
	Audit  audit.Hook
	Ready  func(context.Context) error
	Routes []mount
}

// pipeline is the one request pipeline every route passes through: request
// ID, security context, panic recovery, metrics, access log, the door's own
// authentication and authorization, the handler, then the audit hook.
type pipeline struct {
	cfg      pipelineConfig
	metrics  *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytesOut *prometheus.CounterVec
	inflight prometheus.Gauge
	mux      *http.ServeMux
}

func newPipeline(cfg pipelineConfig) *pipeline {
	p := &pipeline{cfg: cfg, metrics: prometheus.NewRegistry()}
	p.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coffer_http_requests_total", Help: "HTTP requests by door, method and status code.",
	}, []string{"door", "method", "code"})
	p.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "coffer_http_request_duration_seconds", Help: "HTTP request latency by door and method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"door", "method"})
	p.bytesOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coffer_http_response_bytes_total", Help: "Response body bytes by door.",
	}, []string{"door"})
	p.inflight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "coffer_http_requests_in_flight", Help: "Requests being served.",
	})
	p.metrics.MustRegister(p.requests, p.duration, p.bytesOut, p.inflight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	p.mux = http.NewServeMux()
	for _, m := range cfg.Routes {
		fam := m.family
		if fam == "" {
			fam = strings.Trim(m.prefix, "/")
		}
		h := p.wrap(fam, m.handler)
		p.mux.Handle(m.prefix, h)
		if m.prefix != "/" {
			p.mux.Handle(m.prefix+"/", h)
		}
	}
	p.mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	p.mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := cfg.Ready(ctx); err != nil {
			cfg.Log.WarnContext(ctx, "not ready", "error", err)
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	p.mux.Handle("/metrics", promhttp.HandlerFor(p.metrics, promhttp.HandlerOpts{}))
	return p
}

func (p *pipeline) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.mux.ServeHTTP(w, r) }

// wrap puts a door behind the pipeline.
func (p *pipeline) wrap(door string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &auth.Info{
			RequestID:       newRequestID(),
			Time:            start.UTC(),
			SourceIP:        remoteIP(r.RemoteAddr),
			SecureTransport: r.TLS != nil,
			UserAgent:       r.UserAgent(),
			Principal:       auth.Anonymous,
		}
		w.Header().Set("X-Request-Id", info.RequestID)
		rec := &recorder{ResponseWriter: w}
		r = r.WithContext(auth.WithInfo(r.Context(), info))
		p.inflight.Inc()
		defer func() {
			p.inflight.Dec()
			v := recover()
			if v != nil && v != http.ErrAbortHandler {
				p.cfg.Log.ErrorContext(r.Context(), "panic serving request", "request_id", info.RequestID,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !rec.wrote {
					http.Error(rec, "internal server error", http.StatusInternalServerError)
				}
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			if v == http.ErrAbortHandler {
				status, info.ErrorCode = 499, "ABORTED"
			}
			elapsed := time.Since(start)
			p.requests.WithLabelValues(door, r.Method, strconv.Itoa(status)).Inc()
			p.duration.WithLabelValues(door, r.Method).Observe(elapsed.Seconds())
			p.bytesOut.WithLabelValues(door).Add(float64(rec.bytes))
			p.cfg.Log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("request_id", info.RequestID), slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.Int("status", status),
				slog.Int64("bytes_out", rec.bytes), slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
				slog.String("source_ip", info.SourceIP.String()), slog.String("user_agent", info.UserAgent))
			if p.cfg.Audit != nil {
				if err := p.cfg.Audit.Record(r.Context(), info, audit.Outcome{
					Status: status, ErrorCode: info.ErrorCode, ErrorMessage: info.ErrorMessage, Duration: elapsed,
				}); err != nil {
					p.cfg.Log.ErrorContext(r.Context(), "audit record failed", "request_id", info.RequestID, "error", err)
				}
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func remoteIP(remoteAddr string) netip.Addr {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

// recorder captures the status and body size for logs, metrics and audit.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush implements http.Flusher.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack implements http.Hijacker for completeness.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := r.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

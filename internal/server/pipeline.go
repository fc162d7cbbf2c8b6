package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/endpoint"
)

// mount routes a path prefix (and everything below it) to a door.
type mount struct {
	prefix  string
	family  string // metrics label
	handler http.Handler
	// unavailable writes the door's own 503 body with msg when the audit
	// record of a request cannot be made durable (fail closed) or a
	// backend is down (backend.go); nil: plain text.
	unavailable func(w http.ResponseWriter, r *http.Request, info *auth.Info, msg string)
	// denied writes the door's own 403 body with msg (an endpoint refusing
	// the request's source or service); nil: plain text.
	denied func(w http.ResponseWriter, r *http.Request, info *auth.Info, msg string)
	// service names the endpoint service a request to this door needs
	// (endpoint.ServiceECRDKR, ...); nil: any endpoint serves it.
	service func(r *http.Request) string
}

// dkrService: /v2/ is the ecr.dkr service.
func dkrService(*http.Request) string { return endpoint.ServiceECRDKR }

// apiService: the AWS APIs are ecr.api, except KMS, its own service.
func apiService(r *http.Request) string {
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "TrentService.") {
		return endpoint.ServiceKMS
	}
	return endpoint.ServiceECRAPI
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
	// auditFailures counts requests answered 503 because their audit record
	// could not be made durable.
	auditFailures prometheus.Counter
	mux           *http.ServeMux
	// probe tells whether a backend is down when a handler fails.
	probe *backendProbe
}

func newPipeline(cfg pipelineConfig) *pipeline {
	p := &pipeline{cfg: cfg, metrics: prometheus.NewRegistry(), probe: &backendProbe{ping: cfg.Ready}}
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
	p.auditFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "coffer_audit_failures_total", Help: "Requests refused (503) because their audit record could not be made durable.",
	})
	p.metrics.MustRegister(p.requests, p.duration, p.bytesOut, p.inflight, p.auditFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if st, ok := cfg.Audit.(interface{ Stats() audit.Stats }); ok {
		// Group commit at work: records per commit = records / commits,
		// and the sync latency = commit seconds / commits.
		p.metrics.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "coffer_audit_records_total", Help: "Audit records made durable.",
			}, func() float64 { return float64(st.Stats().Records) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "coffer_audit_commits_total", Help: "Audit group commits (one write and one fsync each).",
			}, func() float64 { return float64(st.Stats().Commits) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "coffer_audit_commit_seconds_total", Help: "Time the audit group commits took, write to fsync's return: divided by the commits, the disk's sync latency.",
			}, func() float64 { return st.Stats().CommitTime.Seconds() }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "coffer_audit_shared_backlog", Help: "Sealed audit log files waiting to be published to the replicas' shared trail.",
			}, func() float64 { return float64(st.Stats().SharedBacklog) }))
	}

	p.mux = http.NewServeMux()
	for _, m := range cfg.Routes {
		fam := m.family
		if fam == "" {
			fam = strings.Trim(m.prefix, "/")
		}
		h := p.wrap(fam, m)
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

func (p *pipeline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if refusedOutsideDoors(w, r) {
		return
	}
	p.mux.ServeHTTP(w, r)
}

// wrap puts a door behind the pipeline.
func (p *pipeline) wrap(door string, m mount) http.Handler {
	next, unavailable, denied := m.handler, m.unavailable, m.denied
	if denied == nil {
		denied = func(w http.ResponseWriter, _ *http.Request, info *auth.Info, msg string) {
			info.ErrorCode, info.ErrorMessage = "AccessDenied", msg
			http.Error(w, msg, http.StatusForbidden)
		}
	}
	metrics := newDoorMetrics(p, door)
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
		if a, ok := clientFrom(r.Context()); ok {
			info.SourceIP = a // named by a trusted proxy
		}
		info.Host = r.Host
		if r.TLS != nil {
			info.TLSVersion = tls.VersionName(r.TLS.Version)
			info.TLSCipherSuite = tls.CipherSuiteName(r.TLS.CipherSuite)
		}
		ep := endpoint.For(r.Context())
		if ep != nil {
			info.EndpointID, info.VPCID = ep.ID, ep.VPCID
		}
		w.Header().Set("X-Request-Id", info.RequestID)
		ctx := auth.WithInfo(r.Context(), info)
		r = r.WithContext(ctx)
		rec := &recorder{ResponseWriter: w}
		// The audit record is made durable at the moment the status line is
		// about to be sent: the outcome is known and nothing has left. If it
		// cannot be, the client gets 503 instead (fail closed).
		// A handler's 500 while a backend is down becomes a 503 the client
		// may retry (backend.go); it is audited as the 503 it is.
		rec.commit = func(status int) error {
			var err error
			msg := ""
			if status == http.StatusInternalServerError {
				if down := p.probe.down(ctx); down != nil {
					p.cfg.Log.WarnContext(ctx, "backend unavailable; answering 503", "request_id", info.RequestID, "error", down)
					status, msg, err = http.StatusServiceUnavailable, backendUnavailable, errBackendDown
					info.ErrorCode, info.ErrorMessage = "ServiceUnavailable", backendUnavailable
				}
			}
			if p.cfg.Audit != nil {
				if aerr := p.cfg.Audit.Record(ctx, info, audit.Outcome{
					Status: status, ErrorCode: info.ErrorCode, ErrorMessage: info.ErrorMessage, Duration: time.Since(start),
				}); aerr != nil {
					p.cfg.Log.ErrorContext(ctx, "audit record failed; answering 503", "request_id", info.RequestID, "error", aerr)
					p.auditFailures.Inc()
					msg, err = auditUnavailable, aerr
				}
			}
			if err == nil {
				return nil
			}
			hdr := w.Header()
			for k := range hdr {
				if k != "X-Request-Id" {
					hdr.Del(k)
				}
			}
			hdr.Set("Retry-After", "5")
			switch {
			case unavailable != nil:
				unavailable(w, r, info, msg)
			case err == errBackendDown:
				http.Error(w, "service unavailable: "+msg, http.StatusServiceUnavailable)
			default:
				http.Error(w, "service unavailable: the audit trail cannot record this request", http.StatusServiceUnavailable)
			}
			return err
		}
		p.inflight.Inc()
		defer func() {
			p.inflight.Dec()
			v := recover()
			if v != nil && v != http.ErrAbortHandler {
				p.cfg.Log.ErrorContext(ctx, "panic serving request", "request_id", info.RequestID,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !rec.wrote {
					info.ErrorCode, info.ErrorMessage = "InternalError", "internal server error"
					http.Error(rec, "internal server error", http.StatusInternalServerError)
				}
			}
			if !rec.wrote { // a handler that wrote nothing still answers 200: through the gate
				rec.WriteHeader(http.StatusOK)
			}
			status := rec.status
			if rec.failed {
				status = http.StatusServiceUnavailable
			}
			if v == http.ErrAbortHandler {
				status = 499
			}
			elapsed := time.Since(start)
			metrics.observe(r.Method, status, elapsed, rec.bytes)
			if p.cfg.Log.Enabled(ctx, slog.LevelInfo) {
				p.cfg.Log.LogAttrs(ctx, slog.LevelInfo, "request",
					slog.String("request_id", info.RequestID), slog.String("method", r.Method),
					slog.String("path", r.URL.Path), slog.Int("status", status),
					slog.Int64("bytes_out", rec.bytes), slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
					slog.String("source_ip", info.SourceIP.String()), slog.String("user_agent", info.UserAgent))
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
		}()
		// A source named by a trusted proxy's X-Forwarded-For meets the
		// endpoint's allowed CIDRs here (any other was checked at accept).
		if ep != nil && !ep.AllowsSource(info.SourceIP) {
			denied(rec, r, info, sourceRefusedMessage(ep, info.SourceIP))
			return
		}
		if ep != nil && !ep.AllowsHost(r.Host) {
			info.ErrorCode, info.ErrorMessage = "MisdirectedRequest", "this endpoint does not answer to that host name"
			http.Error(rec, "misdirected request: endpoint "+ep.ID+" does not answer to that host name", http.StatusMisdirectedRequest)
			return
		}
		if ep != nil && m.service != nil && !ep.Serves(m.service(r)) {
			denied(rec, r, info, "VPC endpoint "+ep.ID+" does not serve the "+m.service(r)+" service")
			return
		}
		next.ServeHTTP(rec, r)
	})
}

// doorMetrics are a door's series of the request metrics. Finding a
// series by its labels costs more than updating it, so each is found once:
// the door's, and for the usual methods the method's and each status
// code's; other methods are looked up on every request.
type doorMetrics struct {
	p        *pipeline
	door     string
	bytesOut prometheus.Counter
	methods  [len(usualMethods)]methodMetrics
}

var usualMethods = [...]string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete}

// methodMetrics are the series of one door and method, made on first use
// (a series appears in /metrics once it is used) and copied on write:
// status codes are few.
type methodMetrics struct {
	mu     sync.Mutex // held to add a series
	series atomic.Pointer[methodSeries]
}

type methodSeries struct {
	duration prometheus.Observer
	requests map[int]prometheus.Counter // by status code
}

func newDoorMetrics(p *pipeline, door string) *doorMetrics {
	return &doorMetrics{p: p, door: door, bytesOut: p.bytesOut.WithLabelValues(door)}
}

// observe counts a request of the door.
func (d *doorMetrics) observe(method string, status int, elapsed time.Duration, bytes int64) {
	d.bytesOut.Add(float64(bytes))
	i := slices.Index(usualMethods[:], method)
	if i < 0 {
		d.p.requests.WithLabelValues(d.door, method, strconv.Itoa(status)).Inc()
		d.p.duration.WithLabelValues(d.door, method).Observe(elapsed.Seconds())
		return
	}
	m := &d.methods[i]
	s := m.series.Load()
	var requests prometheus.Counter
	if s != nil {
		requests = s.requests[status]
	}
	if requests == nil {
		s, requests = m.add(d, method, status)
	}
	requests.Inc()
	s.duration.Observe(elapsed.Seconds())
}

// add makes the series of status (and of the method, on first use).
func (m *methodMetrics) add(d *doorMetrics, method string, status int) (*methodSeries, prometheus.Counter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := &methodSeries{requests: map[int]prometheus.Counter{}}
	if s := m.series.Load(); s != nil {
		next.duration = s.duration
		maps.Copy(next.requests, s.requests)
	} else {
		next.duration = d.p.duration.WithLabelValues(d.door, method)
	}
	c, ok := next.requests[status]
	if !ok {
		c = d.p.requests.WithLabelValues(d.door, method, strconv.Itoa(status))
		next.requests[status] = c
	}
	m.series.Store(next)
	return next, c
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

// errAuditFailed is what writes return after the audit gate refused a
// response, or a backend outage turned it into a 503 (errBackendDown).
var (
	errAuditFailed = errors.New("response withheld: a 503 was sent instead")
	errBackendDown = errors.New("backend unavailable")
)

// recorder captures the status and body size for logs and metrics, and
// passes the status line through the audit gate (commit) first.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
	failed bool // the audit gate refused: a 503 went out instead
	commit func(status int) error
}

func (r *recorder) WriteHeader(code int) {
	if r.wrote {
		return
	}
	r.status, r.wrote = code, true
	if code >= 100 && code < 200 {
		r.wrote = false // informational: the final status comes later
		r.ResponseWriter.WriteHeader(code)
		return
	}
	if r.commit != nil {
		if err := r.commit(code); err != nil {
			r.failed = true
			return
		}
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.WriteHeader(http.StatusOK)
	}
	if r.failed {
		return 0, errAuditFailed
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

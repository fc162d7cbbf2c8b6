package audit

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// Forwarding copies durable records to other systems. Each sink has its
// own goroutine and a bounded in-memory queue fed only after a group
// commit succeeded, so a sink sees nothing that is not in the trail, and a
// slow or failing sink never delays or fails Record: it is retried with
// backoff, and when its queue is full the oldest records are dropped from
// the queue (counted and logged; they remain in the trail, where
// `coffer audit tail --since` can replay them). Delivery is at least
// once: a batch that failed half-way is sent again.

// SinkEvent is one record as a sink receives it.
type SinkEvent struct {
	// Record is the CloudTrail record, as written to the trail.
	Record      json.RawMessage
	Time        time.Time
	EventID     string
	EventName   string
	EventSource string
	ErrorCode   string
}

// Sink is a forwarding destination.
type Sink interface {
	// Name identifies the sink in logs and statistics.
	Name() string
	// Send delivers events in order; an error means none may have
	// arrived, and the same events are sent again later.
	Send(ctx context.Context, events []SinkEvent) error
	Close() error
}

// SinkStats describe one sink's forwarding.
type SinkStats struct {
	Name      string
	Queued    int
	Sent      uint64
	Dropped   uint64
	LastError string
}

const sinkBatch = 100

type forwarder struct {
	sink Sink
	max  int
	log  *slog.Logger

	mu       sync.Mutex
	q        []SinkEvent
	headSeq  uint64 // sequence number of q[0]
	sent     uint64
	dropped  uint64
	lastErr  string
	lastWarn time.Time
	wake     chan struct{}
	stop     chan time.Time // the drain deadline
	done     chan struct{}
}

func newForwarder(sink Sink, max int, log *slog.Logger) *forwarder {
	f := &forwarder{sink: sink, max: max, log: log, wake: make(chan struct{}, 1),
		stop: make(chan time.Time, 1), done: make(chan struct{})}
	go f.run()
	return f
}

func (f *forwarder) enqueue(es []entry) {
	f.mu.Lock()
	for _, e := range es {
		if len(f.q) >= f.max {
			f.q = f.q[1:]
			f.headSeq++
			f.dropped++
			if time.Since(f.lastWarn) > time.Minute {
				f.lastWarn = time.Now()
				f.log.Warn("audit: forwarding backlog full; dropping the oldest queued records (they remain in the trail)",
					"sink", f.sink.Name(), "dropped_total", f.dropped)
			}
		}
		f.q = append(f.q, SinkEvent{Record: e.data, Time: time.Unix(e.meta.t, 0).UTC(), EventID: e.meta.eventID,
			EventName: e.meta.name, EventSource: e.meta.source, ErrorCode: e.meta.errorCode})
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *forwarder) run() {
	defer close(f.done)
	defer f.sink.Close()
	backoff := 100 * time.Millisecond
	var deadline time.Time
	for {
		f.mu.Lock()
		n := min(len(f.q), sinkBatch)
		batch := append([]SinkEvent(nil), f.q[:n]...)
		first := f.headSeq
		f.mu.Unlock()
		if n == 0 {
			if !deadline.IsZero() {
				return
			}
			select {
			case <-f.wake:
			case deadline = <-f.stop:
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if !deadline.IsZero() {
			ctx, cancel = context.WithDeadline(context.Background(), deadline)
		}
		err := f.sink.Send(ctx, batch)
		cancel()
		if err == nil {
			backoff = 100 * time.Millisecond
			f.mu.Lock()
			// Records may have been dropped from the head meanwhile.
			if done := first + uint64(n); done > f.headSeq {
				k := int(done - f.headSeq)
				f.q = f.q[k:]
				f.headSeq = done
			}
			f.sent += uint64(n)
			f.mu.Unlock()
			continue
		}
		f.mu.Lock()
		f.lastErr = err.Error()
		warn := time.Since(f.lastWarn) > time.Minute
		if warn {
			f.lastWarn = time.Now()
		}
		f.mu.Unlock()
		if warn {
			f.log.Warn("audit: forwarding failed; retrying", "sink", f.sink.Name(), "error", err)
		}
		if !deadline.IsZero() {
			if !time.Now().Before(deadline) {
				f.mu.Lock()
				left := len(f.q)
				f.mu.Unlock()
				f.log.Warn("audit: records not forwarded at shutdown (they remain in the trail)", "sink", f.sink.Name(), "records", left)
				return
			}
			time.Sleep(min(backoff, time.Until(deadline)))
		} else {
			select {
			case <-time.After(backoff):
			case deadline = <-f.stop:
			}
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// close drains the queue until timeout, then stops the sink.
func (f *forwarder) close(timeout time.Duration) {
	f.stop <- time.Now().Add(timeout)
	<-f.done
}

func (f *forwarder) stats() SinkStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return SinkStats{Name: f.sink.Name(), Queued: len(f.q), Sent: f.sent, Dropped: f.dropped, LastError: f.lastErr}
}

// SinkStats reports each sink's forwarding, in Config.Sinks order.
func (s *Store) SinkStats() []SinkStats {
	out := make([]SinkStats, len(s.fwd))
	for i, f := range s.fwd {
		out[i] = f.stats()
	}
	return out
}

// WebhookConfig configures a webhook sink.
type WebhookConfig struct {
	// URL receives POST requests with a JSON body {"Records":[...]}, as a
	// CloudTrail log file holds them; any 2xx status acknowledges.
	URL string
	// Header is added to every request (e.g. Authorization).
	Header http.Header
	// Client sends the requests; nil means a client with a 10-second
	// timeout.
	Client *http.Client
}

type webhookSink struct{ cfg WebhookConfig }

// NewWebhookSink returns a sink that POSTs batches of records to a URL.
func NewWebhookSink(cfg WebhookConfig) (Sink, error) {
	if cfg.URL == "" {
		return nil, errors.New("audit: webhook sink needs a URL")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	return &webhookSink{cfg: cfg}, nil
}

func (w *webhookSink) Name() string { return "webhook " + w.cfg.URL }

func (w *webhookSink) Send(ctx context.Context, events []SinkEvent) error {
	var body bytes.Buffer
	body.WriteString(`{"Records":[`)
	for i, e := range events {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(e.Record)
	}
	body.WriteString(`]}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, &body)
	if err != nil {
		return err
	}
	for k, vs := range w.cfg.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

func (w *webhookSink) Close() error { return nil }

// SyslogConfig configures a syslog sink.
type SyslogConfig struct {
	// Addr is the collector's host:port (TCP).
	Addr string
	// TLS, when set, speaks syslog over TLS (RFC 5425).
	TLS *tls.Config
	// Facility is the syslog facility; 0 means 13, "log audit".
	Facility int
	// Hostname and AppName fill the header; empty means os.Hostname and
	// "coffer".
	Hostname string
	AppName  string
	// Timeout bounds a dial and a write; 0 means 10 seconds.
	Timeout time.Duration
}

type syslogSink struct {
	cfg  SyslogConfig
	conn net.Conn
	pid  string
}

// NewSyslogSink returns a sink that sends each record as one RFC 5424
// message, octet-counted (RFC 6587), over TCP or TLS. The message is the
// record's JSON; MSGID is the event name; the severity is informational,
// or notice for a failed request.
func NewSyslogSink(cfg SyslogConfig) (Sink, error) {
	if cfg.Addr == "" {
		return nil, errors.New("audit: syslog sink needs an address")
	}
	if cfg.Facility == 0 {
		cfg.Facility = 13
	}
	if cfg.Facility < 0 || cfg.Facility > 23 {
		return nil, fmt.Errorf("audit: syslog facility %d is not 0-23", cfg.Facility)
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.AppName == "" {
		cfg.AppName = "coffer"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &syslogSink{cfg: cfg, pid: strconv.Itoa(os.Getpid())}, nil
}

func (s *syslogSink) Name() string { return "syslog " + s.cfg.Addr }

func (s *syslogSink) Send(ctx context.Context, events []SinkEvent) error {
	if s.conn != nil && !alive(s.conn) {
		// The collector closed the connection (a restart): a write would
		// still succeed, into the void.
		s.conn.Close()
		s.conn = nil
	}
	if s.conn == nil {
		d := &net.Dialer{Timeout: s.cfg.Timeout}
		var conn net.Conn
		var err error
		if s.cfg.TLS != nil {
			conn, err = (&tls.Dialer{NetDialer: d, Config: s.cfg.TLS}).DialContext(ctx, "tcp", s.cfg.Addr)
		} else {
			conn, err = d.DialContext(ctx, "tcp", s.cfg.Addr)
		}
		if err != nil {
			return err
		}
		s.conn = conn
	}
	var buf bytes.Buffer
	for _, e := range events {
		msg := s.format(e)
		buf.WriteString(strconv.Itoa(len(msg)))
		buf.WriteByte(' ')
		buf.Write(msg)
	}
	deadline := time.Now().Add(s.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	s.conn.SetWriteDeadline(deadline)
	if _, err := s.conn.Write(buf.Bytes()); err != nil {
		s.conn.Close()
		s.conn = nil
		return err
	}
	return nil
}

// alive reports whether the peer has not closed conn: a read that must
// time out within a millisecond does, instead of returning EOF. (An
// expired deadline would fail the read before it looks at the socket.)
// Syslog collectors send nothing, so the probe loses no data.
func alive(conn net.Conn) bool {
	conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := conn.Read(b[:])
	conn.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// format builds one RFC 5424 message:
// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG
func (s *syslogSink) format(e SinkEvent) []byte {
	sev := 6 // informational
	if e.ErrorCode != "" {
		sev = 5 // notice
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "<%d>1 %s %s %s %s %s - ", s.cfg.Facility*8+sev, e.Time.UTC().Format(time.RFC3339),
		headerField(s.cfg.Hostname, 255), headerField(s.cfg.AppName, 48), headerField(s.pid, 128), headerField(e.EventName, 32))
	b.Write(e.Record)
	return b.Bytes()
}

// headerField is a syslog header field: printable US-ASCII without
// spaces, at most n characters, or "-".
func headerField(v string, n int) string {
	out := make([]byte, 0, min(len(v), n))
	for i := 0; i < len(v) && len(out) < n; i++ {
		if c := v[i]; c > 32 && c < 127 {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return string(out)
}

func (s *syslogSink) Close() error {
	if s.conn != nil {
		return s.conn.Close()
	}
	return nil
}

type fileSink struct {
	path string
	f    *os.File
}

// NewFileSink returns a sink that appends each record as one JSON line to
// a file (created 0600), fsynced per batch: a second copy on another disk.
func NewFileSink(path string) (Sink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: file sink: %w", err)
	}
	return &fileSink{path: path, f: f}, nil
}

func (s *fileSink) Name() string { return "file " + s.path }

func (s *fileSink) Send(_ context.Context, events []SinkEvent) error {
	var buf bytes.Buffer
	for _, e := range events {
		buf.Write(e.Record)
		buf.WriteByte('\n')
	}
	if _, err := s.f.Write(buf.Bytes()); err != nil {
		return err
	}
	return s.f.Sync()
}

func (s *fileSink) Close() error { return s.f.Close() }

package audit

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// collector keeps the distinct event IDs a sink delivered.
type collector struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (c *collector) add(rec []byte) error {
	var ev Event
	if err := json.Unmarshal(rec, &ev); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids == nil {
		c.ids = map[string]bool{}
	}
	c.ids[ev.EventID] = true
	return nil
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebhookSinkRetries: the webhook fails at first; the records reach
// it once it recovers, and Record never noticed.
func TestWebhookSinkRetries(t *testing.T) {
	t.Parallel()
	var got collector
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 3 {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		if r.Header.Get("Authorization") != "Bearer hook-token" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad headers", http.StatusBadRequest)
			return
		}
		var body struct{ Records []json.RawMessage }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rec := range body.Records {
			got.add(rec)
		}
	}))
	defer srv.Close()
	sink, err := NewWebhookSink(WebhookConfig{URL: srv.URL, Header: http.Header{"Authorization": {"Bearer hook-token"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, t.TempDir(), func(c *Config) { c.Sinks = []Sink{sink} })
	for i := range 25 {
		if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "25 records at the webhook", func() bool { return got.count() == 25 && s.SinkStats()[0].Queued == 0 })
	if st := s.SinkStats()[0]; st.Sent < 25 || st.Dropped != 0 || !strings.Contains(st.LastError, "500") {
		t.Errorf("stats = %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(trailRecords(t, s.cfg.Dir)); n != 25 {
		t.Fatalf("trail holds %d records", n)
	}
}

// TestSinkBacklogIsBounded: a sink that is down keeps at most SinkBacklog
// records queued; the oldest are dropped (and counted), the trail keeps
// everything.
func TestSinkBacklogIsBounded(t *testing.T) {
	t.Parallel()
	var up atomic.Bool
	var got collector
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var body struct{ Records []json.RawMessage }
		json.NewDecoder(r.Body).Decode(&body)
		for _, rec := range body.Records {
			got.add(rec)
		}
	}))
	defer srv.Close()
	sink, _ := NewWebhookSink(WebhookConfig{URL: srv.URL})
	dir := t.TempDir()
	s := newTestStore(t, dir, func(c *Config) { c.Sinks = []Sink{sink}; c.SinkBacklog = 10 })
	for i := range 50 {
		if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	// The worker may hold one record in flight (being retried), besides
	// the bounded queue.
	st := s.SinkStats()[0]
	if st.Queued > 10 || st.Dropped < 39 {
		t.Fatalf("stats = %+v; want at most 10 queued and at least 39 dropped", st)
	}
	up.Store(true)
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 4*time.Second {
		t.Errorf("Close took %s", time.Since(start))
	}
	// The batch in flight while the sink was down was copied from a queue
	// of at most 10, and may hold records dropped from the queue since.
	if n := got.count(); n < 10 || n > 20 {
		t.Errorf("the webhook got %d records after recovering, want the 10 queued (and at most a batch of 10 in flight)", n)
	}
	if n := len(trailRecords(t, dir)); n != 50 {
		t.Fatalf("trail holds %d records, want 50", n)
	}
}

// syslogServer accepts octet-counted RFC 5424 messages on ln until it is
// closed, and closes its connections then too (a collector restart).
func syslogServer(t *testing.T, ln net.Listener, got *collector) chan string {
	msgs := make(chan string, 1000)
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		defer func() {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			go func() {
				br := bufio.NewReader(conn)
				for {
					lenStr, err := br.ReadString(' ')
					if err != nil {
						return
					}
					size, err := strconv.Atoi(strings.TrimSpace(lenStr))
					if err != nil {
						t.Errorf("bad frame length %q", lenStr)
						return
					}
					msg := make([]byte, size)
					if _, err := io.ReadFull(br, msg); err != nil {
						return
					}
					i := strings.Index(string(msg), " - {")
					if i < 0 {
						t.Errorf("message without JSON: %q", msg)
						return
					}
					got.add(msg[i+3:])
					msgs <- string(msg[:i+3])
				}
			}()
		}
	}()
	return msgs
}

var syslogHeader = regexp.MustCompile(`^<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ testhost coffer \d+ (\w+) - $`)

// TestSyslogSinkOverTCP sends RFC 5424 messages to a collector that
// restarts half-way: the sink reconnects and nothing is lost.
func TestSyslogSinkOverTCP(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var got collector
	msgs := syslogServer(t, ln, &got)
	sink, err := NewSyslogSink(SyslogConfig{Addr: addr, Hostname: "test host"})
	if err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, t.TempDir(), func(c *Config) { c.Sinks = []Sink{sink} })
	defer s.Close()
	for i := range 4 {
		if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "4 records at the collector", func() bool { return got.count() == 4 })
	ln.Close() // the collector restarts
	time.Sleep(50 * time.Millisecond)
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	msgs2 := syslogServer(t, ln, &got)
	for i := 4; i < 8; i++ {
		if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "8 records at the collector", func() bool { return got.count() == 8 })
	pris := map[string]bool{}
	for _, ch := range []chan string{msgs, msgs2} {
		for len(ch) > 0 {
			h := <-ch
			m := syslogHeader.FindStringSubmatch(h)
			if m == nil {
				t.Fatalf("header %q is not RFC 5424 as sent", h)
			}
			pris[m[1]+" "+m[2]] = true
		}
	}
	// Facility 13 (log audit): 110 informational, 109 notice for the
	// failed DeleteRepository.
	for _, want := range []string{"110 PutImage", "110 BatchGetImage", "109 DeleteRepository"} {
		if !pris[want] {
			t.Errorf("no message %q among %v", want, pris)
		}
	}
}

func TestSyslogSinkOverTLS(t *testing.T) {
	t.Parallel()
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var got collector
	syslogServer(t, ln, &got)
	sink, err := NewSyslogSink(SyslogConfig{Addr: ln.Addr().String(), TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, t.TempDir(), func(c *Config) { c.Sinks = []Sink{sink} })
	defer s.Close()
	for i := range 5 {
		if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "5 records over TLS", func() bool { return got.count() == 5 })
}

func TestFileSink(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "copy.jsonl")
	sink, err := NewFileSink(p)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestStore(t, t.TempDir(), func(c *Config) { c.Sinks = []Sink{sink} })
	for i := range 7 {
		if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	data, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var c collector
	for _, l := range lines {
		if err := c.add([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	if c.count() != 7 {
		t.Fatalf("file copy holds %d records", c.count())
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "syslog"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

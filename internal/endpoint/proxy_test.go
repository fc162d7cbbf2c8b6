package endpoint

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := ParsePrefix(s)
		if err != nil {
			panic(err)
		}
		out = append(out, p)
	}
	return out
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	e := &Endpoint{TrustedProxies: prefixes("10.0.0.0/8", "fd00::/8")}
	tests := []struct {
		name string
		peer string
		xff  []string
		want string
	}{
		{"untrusted peer: header ignored", "203.0.113.9", []string{"198.51.100.1"}, "203.0.113.9"},
		{"trusted peer, no header", "10.0.0.1", nil, "10.0.0.1"},
		{"trusted peer names the client", "10.0.0.1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"right-most untrusted wins over a spoofed left part", "10.0.0.1", []string{"1.1.1.1, 198.51.100.1, 10.0.0.7"}, "198.51.100.1"},
		{"several header lines read as one list", "10.0.0.1", []string{"1.1.1.1, 198.51.100.1", "10.0.0.7"}, "198.51.100.1"},
		{"all trusted: the left-most", "10.0.0.1", []string{"10.0.0.9, 10.0.0.7"}, "10.0.0.9"},
		{"garbage stops the walk at the last trusted address", "10.0.0.1", []string{"198.51.100.1, bogus, 10.0.0.7"}, "10.0.0.7"},
		{"garbage right next to the peer", "10.0.0.1", []string{"198.51.100.1, unknown"}, "10.0.0.1"},
		{"empty elements and blanks", "10.0.0.1", []string{" ,\t198.51.100.1 , ,"}, "198.51.100.1"},
		{"ports and brackets", "10.0.0.1", []string{"[2001:db8::1]:443, 10.0.0.3:80"}, "2001:db8::1"},
		{"bare bracketed IPv6", "10.0.0.1", []string{"[2001:db8::2]"}, "2001:db8::2"},
		{"IPv4-mapped peer and entry", "::ffff:10.0.0.1", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"zones refused", "10.0.0.1", []string{"fe80::1%eth0"}, "10.0.0.1"},
		{"IPv6 trusted peer", "fd00::5", []string{"2001:db8::7"}, "2001:db8::7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := e.ClientAddr(netip.MustParseAddr(tc.peer), tc.xff); got.String() != tc.want {
				t.Fatalf("ClientAddr(%s, %q) = %s, want %s", tc.peer, tc.xff, got, tc.want)
			}
		})
	}
	if got := (&Endpoint{}).ClientAddr(netip.MustParseAddr("10.0.0.1"), []string{"198.51.100.1"}); got.String() != "10.0.0.1" {
		t.Fatalf("no trusted proxies: %s", got)
	}
}

// FuzzClientAddr: X-Forwarded-For is untrusted input. Whatever it holds,
// ClientAddr never panics, ignores it from an untrusted peer, and agrees
// with a plain reference reading (split the whole list, walk it from the
// right).
func FuzzClientAddr(f *testing.F) {
	for _, s := range []string{"", "198.51.100.1", "1.1.1.1, 198.51.100.1, 10.0.0.7", "[2001:db8::1]:443,10.0.0.3:80",
		" , ,", "bogus, 10.0.0.7", "fe80::1%eth0", "::ffff:10.1.1.1", "[", "]:", "1.2.3.4:99999", "a\n10.0.0.2"} {
		f.Add("10.0.0.1", s)
		f.Add("203.0.113.9", s)
	}
	e := &Endpoint{TrustedProxies: prefixes("10.0.0.0/8", "fd00::/8")}
	f.Fuzz(func(t *testing.T, peerS, xff string) {
		peer, err := netip.ParseAddr(peerS)
		if err != nil {
			return
		}
		lines := strings.Split(xff, "\n")
		got := e.ClientAddr(peer, lines)
		if want := refClientAddr(e, peer, lines); got != want {
			t.Fatalf("ClientAddr(%s, %q) = %s, reference %s", peer, lines, got, want)
		}
		if got.Is4In6() || (got != peer && got.Zone() != "") {
			t.Fatalf("ClientAddr returned %#v", got)
		}
	})
}

// refClientAddr is ClientAddr written the obvious way.
func refClientAddr(e *Endpoint, peer netip.Addr, lines []string) netip.Addr {
	peer = peer.Unmap()
	if !e.TrustsProxy(peer) {
		return peer
	}
	var entries []string
	for _, l := range lines {
		for _, p := range strings.Split(l, ",") {
			if p = strings.Trim(p, " \t"); p != "" {
				entries = append(entries, p)
			}
		}
	}
	addr := peer
	for i := len(entries) - 1; i >= 0; i-- {
		s := entries[i]
		bracketed := false
		if h, port, err := net.SplitHostPort(s); err == nil {
			if _, err := strconv.ParseUint(port, 10, 16); err != nil {
				return addr
			}
			s, bracketed = h, strings.HasPrefix(entries[i], "[")
		} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			s, bracketed = s[1:len(s)-1], true
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" || (bracketed && !a.Is6()) {
			return addr
		}
		addr = a.Unmap()
		if !e.TrustsProxy(addr) {
			return addr
		}
	}
	return addr
}

// proxyTestServer serves the request's RemoteAddr on an endpoint that
// allows 127.0.0.2 and trusts the proxy 127.0.0.6.
func proxyTestServer(t *testing.T) (addr string, rejected chan netip.Addr) {
	t.Helper()
	e := &Endpoint{ID: NewID(), Allowed: prefixes("127.0.0.2/32"), TrustedProxies: prefixes("127.0.0.6")}
	rejected = make(chan netip.Addr, 8)
	ln, err := Listen(e, "127.0.0.1:0", func(a netip.Addr) { rejected <- a })
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), rejected
}

// rawGet connects from src, sends header (a PROXY header or nothing) and
// a GET, and returns the body or the error that ended the exchange.
func rawGet(t *testing.T, src, addr string, header []byte) (string, error) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 3 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(append(header, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"...)); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func proxyHeader(t *testing.T, version byte, client string) []byte {
	t.Helper()
	h := &proxyproto.Header{Version: version, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr:      &net.TCPAddr{IP: net.ParseIP(client), Port: 40000},
		DestinationAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 443}}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProxyProtocol(t *testing.T) {
	t.Parallel()
	addr, rejected := proxyTestServer(t)
	for _, v := range []byte{1, 2} {
		// A trusted proxy's header names an allowed client: served, and
		// the client is the request's RemoteAddr.
		body, err := rawGet(t, "127.0.0.6", addr, proxyHeader(t, v, "127.0.0.2"))
		if err != nil || body != "127.0.0.2:40000" {
			t.Fatalf("v%d from the trusted proxy = %q, %v; want the client's address", v, body, err)
		}
		// ... or a client outside the allowed CIDRs: reset, reported.
		if body, err := rawGet(t, "127.0.0.6", addr, proxyHeader(t, v, "127.0.0.3")); err == nil {
			t.Fatalf("v%d for a disallowed client got a response: %q", v, body)
		}
		select {
		case a := <-rejected:
			if a.String() != "127.0.0.3" {
				t.Fatalf("rejected %s, want the proxied client 127.0.0.3", a)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("the refusal of the proxied client was not reported")
		}
		// An untrusted peer (itself allowed) may not send one.
		if body, err := rawGet(t, "127.0.0.2", addr, proxyHeader(t, v, "127.0.0.2")); err == nil {
			t.Fatalf("v%d PROXY header from an untrusted peer got a response: %q", v, body)
		}
	}
	// Without a header: the peer itself, checked against the allowed CIDRs.
	if body, err := rawGet(t, "127.0.0.2", addr, nil); err != nil || body[:10] != "127.0.0.2:" {
		t.Fatalf("direct allowed client = %q, %v", body, err)
	}
	// A trusted proxy without a header: its X-Forwarded-For may name the
	// client, so the allowed CIDRs are the server's to apply per request.
	if body, err := rawGet(t, "127.0.0.6", addr, nil); err != nil || body[:10] != "127.0.0.6:" {
		t.Fatalf("trusted proxy without a header = %q, %v", body, err)
	}
	if body, err := rawGet(t, "127.0.0.3", addr, nil); err == nil {
		t.Fatalf("disallowed direct client got %q", body)
	}
}

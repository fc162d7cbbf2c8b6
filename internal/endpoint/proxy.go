package endpoint

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
)

// Trusted proxies (issue #7). A request's source address (aws:SourceIp, the
// audit record's sourceIPAddress, the allowed-CIDR check) is the TCP peer,
// except that a peer in TrustedProxies may say who its client is:
//
//   - with the PROXY protocol (v1 or v2), read when the connection opens;
//     the allowed CIDRs then apply to that client address, and a client
//     outside them is reset like any refused source, before TLS or HTTP;
//   - with X-Forwarded-For, per request: the right-most address that is not
//     itself a trusted proxy (ClientAddr). The allowed CIDRs can only be
//     applied to it per request; the server answers 403. So a trusted
//     proxy's connection without a PROXY header is accepted whatever the
//     allowed CIDRs, and its requests are checked one by one (the proxy's
//     own address is the source when it names no client).
//
// A listener with trusted proxies refuses a PROXY header from any other
// peer (the connection is closed, no HTTP response); one without trusted
// proxies does not speak the PROXY protocol at all.

// ProxyHeaderTimeout bounds how long a trusted proxy may take to send its
// PROXY header after connecting.
const ProxyHeaderTimeout = 5 * time.Second

// ErrSourceRefused is what reads and writes on a connection return after
// the client address its trusted proxy announced was refused.
var ErrSourceRefused = errors.New("endpoint: source address not allowed")

// ParsePrefix parses a CIDR such as 10.0.0.0/16, or a bare address as a
// single-address prefix, and returns it masked.
func ParsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err == nil {
		return p.Masked(), nil
	}
	a, aerr := netip.ParseAddr(s)
	if aerr != nil || a.Zone() != "" {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// TrustsProxy reports whether addr is one of the endpoint's trusted
// proxies.
func (e *Endpoint) TrustsProxy(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range e.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ClientAddr returns the address a request came from, given its TCP peer
// (after any PROXY header) and its X-Forwarded-For header values in order.
// The header counts only when the peer is a trusted proxy; then the
// addresses are read from the right and the first one that is not a
// trusted proxy is the client. If every address is a trusted proxy the
// left-most one is. An entry that is not an address ends the walk: a
// trusted proxy appends only addresses, so the one to its right (or the
// peer) is the last that can be believed. Entries may carry a port
// (1.2.3.4:5678, [::1]:80); IPv4-mapped IPv6 addresses are unmapped.
func (e *Endpoint) ClientAddr(peer netip.Addr, xff []string) netip.Addr {
	addr := peer.Unmap()
	if !e.TrustsProxy(addr) {
		return addr
	}
	for i := len(xff) - 1; i >= 0; i-- {
		v := xff[i]
		for v != "" {
			entry := v
			v = ""
			if j := strings.LastIndexByte(entry, ','); j >= 0 {
				entry, v = entry[j+1:], entry[:j]
			}
			entry = strings.Trim(entry, " \t")
			if entry == "" {
				continue // empty list elements are allowed (RFC 9110 5.6.1)
			}
			a, ok := parseForwardedAddr(entry)
			if !ok {
				return addr
			}
			addr = a
			if !e.TrustsProxy(a) {
				return a
			}
		}
	}
	return addr
}

// parseForwardedAddr parses one X-Forwarded-For entry: an IP address,
// optionally bracketed (IPv6) and with a port. Zones are refused.
func parseForwardedAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), a.Zone() == ""
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), ap.Addr().Zone() == ""
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() {
			return a.Unmap(), a.Zone() == ""
		}
	}
	return netip.Addr{}, false
}

// wrapConn applies the PROXY-protocol rules to an accepted connection
// from peer: a trusted proxy's header is used (and the allowed CIDRs are
// applied to the client it names, at the first use of the connection); any
// other peer's header is refused.
func (l *filterListener) wrapConn(c net.Conn, peer netip.Addr) net.Conn {
	if !l.e.TrustsProxy(peer) {
		return proxyproto.NewConn(c, proxyproto.WithPolicy(proxyproto.REJECT), proxyproto.SetReadHeaderTimeout(ProxyHeaderTimeout))
	}
	pc := proxyproto.NewConn(c, proxyproto.WithPolicy(proxyproto.USE), proxyproto.SetReadHeaderTimeout(ProxyHeaderTimeout))
	return &proxiedConn{Conn: pc, l: l}
}

// proxiedConn is a connection from a trusted proxy. Its first use (the
// server asks for RemoteAddr first, on the connection's own goroutine, so
// a slow proxy never holds up Accept) reads the PROXY header, if any, and
// resets the connection when the client it names is not allowed.
type proxiedConn struct {
	*proxyproto.Conn
	l    *filterListener
	once sync.Once
	err  error
}

func (c *proxiedConn) check() error {
	c.once.Do(func() {
		client := addrOf(c.Conn.RemoteAddr())
		if client == addrOf(c.Conn.Raw().RemoteAddr()) || c.l.e.AllowsSource(client) {
			// No client named (no header, or a LOCAL one): the source
			// is the proxy, or whoever its X-Forwarded-For names, and
			// the server checks it per request.
			return
		}
		c.err = ErrSourceRefused
		if tc, ok := c.Conn.TCPConn(); ok {
			tc.SetLinger(0)
		}
		c.Conn.Close()
		if c.l.rejected != nil {
			c.l.rejected(client)
		}
	})
	return c.err
}

// RemoteAddr returns the client's address: the PROXY header's source, or
// the proxy's own address when it sent none.
func (c *proxiedConn) RemoteAddr() net.Addr {
	c.check()
	return c.Conn.RemoteAddr()
}

func (c *proxiedConn) Read(b []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *proxiedConn) Write(b []byte) (int, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// ReadFrom and WriteTo shadow proxyproto.Conn's, which would bypass check.
func (c *proxiedConn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.ReadFrom(r)
}

func (c *proxiedConn) WriteTo(w io.Writer) (int64, error) {
	if err := c.check(); err != nil {
		return 0, err
	}
	return c.Conn.WriteTo(w)
}

// addrOf returns the IP address of a TCP address, unmapped.
func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

package endpoint

import (
	"net"
	"net/netip"
)

// Listen opens a listener for addr that closes connections from sources
// outside the endpoint's allowed CIDRs at accept, before any TLS or HTTP
// work, with a TCP reset. rejected, if non-nil, is told of each refusal.
func Listen(e *Endpoint, addr string, rejected func(netip.Addr)) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return Wrap(ln, e, rejected), nil
}

// Wrap applies the endpoint's source rules to an open listener: allowed
// CIDRs at accept and, when it has trusted proxies, the PROXY protocol
// (proxy.go).
func Wrap(ln net.Listener, e *Endpoint, rejected func(netip.Addr)) net.Listener {
	return &filterListener{Listener: ln, e: e, rejected: rejected}
}

type filterListener struct {
	net.Listener
	e        *Endpoint
	rejected func(netip.Addr)
}

func (l *filterListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, perr := netip.ParseAddrPort(c.RemoteAddr().String())
		peer := ap.Addr().Unmap()
		if perr == nil && len(l.e.TrustedProxies) > 0 {
			// A trusted proxy's client is checked once its PROXY header
			// is read, on the connection's goroutine.
			if l.e.TrustsProxy(peer) || l.e.AllowsSource(peer) {
				return l.wrapConn(c, peer), nil
			}
		} else if perr == nil && l.e.AllowsSource(peer) {
			return c, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // reset, not an orderly close: nothing more is said
		}
		c.Close()
		if l.rejected != nil {
			l.rejected(peer)
		}
	}
}

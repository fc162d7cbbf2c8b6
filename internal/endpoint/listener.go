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
	return &filterListener{Listener: ln, e: e, rejected: rejected}, nil
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
		if perr == nil && l.e.AllowsSource(ap.Addr()) {
			return c, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // reset, not an orderly close: nothing more is said
		}
		c.Close()
		if l.rejected != nil {
			l.rejected(ap.Addr())
		}
	}
}

package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/endpoint"
	"github.com/cofferhq/coffer/internal/policy"
)

// Endpoints resolves the configured endpoints: IDs left empty are
// generated once and kept in <data>/endpoint-ids.json (keyed by the
// endpoint's listen addresses), policies are parsed.
func Endpoints(cfg config.Config) ([]*endpoint.Endpoint, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, nil
	}
	path := filepath.Join(cfg.DataDir, "endpoint-ids.json")
	known := map[string]string{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &known); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	changed := false
	ids := func(i int) string {
		key := strings.Join(slices.Sorted(slices.Values(cfg.Endpoints[i].Listen)), ",")
		if id, ok := known[key]; ok {
			return id
		}
		id := endpoint.NewID()
		known[key], changed = id, true
		return id
	}
	eps, err := endpoint.Validate(cfg.Endpoints, ids, os.ReadFile, func(doc []byte) error {
		_, err := policy.Parse(doc, policy.Endpoint)
		return err
	})
	if err != nil {
		return nil, err
	}
	global, err := cfg.TrustedProxyPrefixes()
	if err != nil {
		return nil, err
	}
	for _, e := range eps {
		e.TrustedProxies = append(slices.Clone(global), e.TrustedProxies...)
	}
	if changed {
		b, _ := json.MarshalIndent(known, "", "  ")
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("keep endpoint IDs: %w", err)
		}
	}
	return eps, nil
}

// endpointPolicies parses each endpoint's policy (the default full-access
// policy when it has none), keyed by endpoint ID.
func endpointPolicies(eps []*endpoint.Endpoint) (map[string]*policy.Policy, error) {
	out := make(map[string]*policy.Policy, len(eps))
	for _, e := range eps {
		if len(e.Policy) == 0 {
			out[e.ID] = policy.DefaultEndpointPolicy()
			continue
		}
		p, err := policy.Parse(e.Policy, policy.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("endpoint %s policy: %w", e.ID, err)
		}
		out[e.ID] = p
	}
	return out, nil
}

// publicNeedsTLS: the public listener serves TLS unless it is on loopback
// or plain HTTP was asked for (issue #7).
func publicNeedsTLS(addr string, insecureHTTP bool) bool {
	ap, err := netip.ParseAddrPort(addr)
	return err != nil || (!ap.Addr().IsLoopback() && !insecureHTTP)
}

// listener is one address an endpoint (or the public listener) serves.
type listener struct {
	ep    *endpoint.Endpoint
	ln    net.Listener
	certs *endpoint.Certificate // nil: plain HTTP
}

// openListeners opens the public listener (unless disabled) and every
// endpoint address, with TLS (operator files or the generated CA) unless
// the endpoint is insecure.
func openListeners(cfg config.Config, eps []*endpoint.Endpoint, log *slog.Logger) ([]listener, error) {
	var out []listener
	closeAll := func() {
		for _, l := range out {
			l.ln.Close()
		}
	}
	var ca *endpoint.CA
	if cfg.PublicEndpoint {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
		}
		pub := listener{ep: publicEndpoint(cfg), ln: ln}
		if len(pub.ep.TrustedProxies) > 0 {
			pub.ln = endpoint.Wrap(ln, pub.ep, nil)
		}
		// TLS on every non-loopback listener unless explicitly insecure.
		if publicNeedsTLS(ln.Addr().String(), cfg.InsecureHTTP) {
			if ca, err = endpoint.LoadOrCreateCA(filepath.Join(cfg.DataDir, "tls")); err != nil {
				ln.Close()
				return nil, err
			}
			certFile, keyFile, err := ca.Issue(&endpoint.Endpoint{ID: "public", Listen: []string{ln.Addr().String()}})
			if err != nil {
				ln.Close()
				return nil, fmt.Errorf("public listener certificate: %w", err)
			}
			if pub.certs, err = endpoint.LoadCertificate(certFile, keyFile); err != nil {
				ln.Close()
				return nil, err
			}
		}
		out = append(out, pub)
	}
	for _, e := range eps {
		var certs *endpoint.Certificate
		if !e.Insecure {
			certFile, keyFile := e.CertFile, e.KeyFile
			if certFile == "" {
				if ca == nil {
					var err error
					if ca, err = endpoint.LoadOrCreateCA(filepath.Join(cfg.DataDir, "tls")); err != nil {
						closeAll()
						return nil, err
					}
				}
				var err error
				if certFile, keyFile, err = ca.Issue(e); err != nil {
					closeAll()
					return nil, fmt.Errorf("endpoint %s certificate: %w", e.ID, err)
				}
			}
			var err error
			if certs, err = endpoint.LoadCertificate(certFile, keyFile); err != nil {
				closeAll()
				return nil, fmt.Errorf("endpoint %s: %w", e.ID, err)
			}
		}
		for _, addr := range e.Listen {
			id := e.ID
			ln, err := endpoint.Listen(e, addr, func(a netip.Addr) {
				log.Info("connection refused by endpoint source rule", "endpoint_id", id, "source_ip", a.String())
			})
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("endpoint %s: listen on %s: %w", e.ID, addr, err)
			}
			out = append(out, listener{ep: e, ln: ln, certs: certs})
		}
	}
	return out, nil
}

// serveListeners serves handler on every listener until ctx ends, then
// shuts them down gracefully. Certificates reload on SIGHUP and when their
// files change.
func serveListeners(ctx context.Context, ls []listener, handler http.Handler, timeout time.Duration, log *slog.Logger) error {
	var servers []*http.Server
	errc := make(chan error, len(ls))
	for _, l := range ls {
		srv := &http.Server{
			Handler:           withEndpoint(l.ep, handler),
			ReadHeaderTimeout: 10 * time.Second,
			// Blob bodies stream for as long as they take; idle connections
			// and slow headers are what the timeouts bound.
			IdleTimeout:    120 * time.Second,
			MaxHeaderBytes: 64 << 10,
			ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		servers = append(servers, srv)
		if l.certs != nil {
			srv.TLSConfig = endpoint.TLSConfig(l.certs)
			go func() { errc <- srv.ServeTLS(l.ln, "", "") }()
		} else {
			go func() { errc <- srv.Serve(l.ln) }()
		}
		log.Info("listening", "address", l.ln.Addr().String(), "endpoint_id", l.ep.ID, "public", l.ep.Public,
			"tls", l.certs != nil, "services", l.ep.Services)
	}
	go reloadCertificates(ctx, ls, log)
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", timeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if serr := srv.Shutdown(sctx); serr != nil {
				srv.Close()
			}
		}()
	}
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func reloadCertificates(ctx context.Context, ls []listener, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case <-hup:
			force = true
		case <-tick.C:
		}
		seen := map[*endpoint.Certificate]bool{}
		for _, l := range ls {
			if l.certs == nil || seen[l.certs] {
				continue
			}
			seen[l.certs] = true
			var err error
			changed := force
			if force {
				err = l.certs.Reload()
			} else {
				changed, err = l.certs.ReloadIfChanged()
			}
			if err != nil {
				log.Error("certificate reload failed; keeping the old one", "endpoint_id", l.ep.ID, "error", err)
			} else if changed {
				log.Info("certificate reloaded", "endpoint_id", l.ep.ID)
			}
		}
	}
}

// withEndpoint puts the endpoint a request arrived through in its
// context, and the source address when trusted proxies may name it.
func withEndpoint(e *endpoint.Endpoint, h http.Handler) http.Handler {
	if e.Public && len(e.TrustedProxies) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := resolveClient(e, r)
		if !e.Public {
			ctx = endpoint.With(ctx, e)
		}
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Package endpoint implements ECR's interface-VPC-endpoint model on a
// self-hosted registry (SPEC VPCE-*, EPOL-*): named network listeners, each
// with an ID, a VPC label, the services it serves, private DNS names, the
// source addresses it accepts (the security-group analogue), TLS, and an
// endpoint policy that gates every request arriving through it.
//
// What it guarantees:
//   - A connection from an address outside AllowedCIDRs is closed at
//     accept, before any TLS or HTTP work; behind a trusted proxy that
//     names its client with the PROXY protocol, the client's address is
//     the one checked (proxy.go). A PROXY header from any other peer is
//     refused; X-Forwarded-For counts only from a trusted proxy
//     (ClientAddr), and the server checks such a client per request.
//   - A request whose Host is not one of the endpoint's DNS names (when it
//     has any) or whose door is not among its services never reaches a
//     handler.
//   - Every request that arrived through an endpoint carries it in its
//     context (For), for the aws:SourceVpce / aws:SourceVpc condition keys,
//     the endpoint-policy gate and the audit record's vpcEndpointId.
package endpoint

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// Services an endpoint can serve (ECR's service names).
const (
	ServiceECRAPI = "ecr.api" // the AWS JSON and Query APIs (ECR, IAM, STS, CloudTrail)
	ServiceECRDKR = "ecr.dkr" // the OCI /v2/ API
	ServiceS3     = "s3"      // presigned layer downloads
	ServiceKMS    = "kms"     // the KMS API
)

var allServices = []string{ServiceECRAPI, ServiceECRDKR, ServiceS3, ServiceKMS}

// Config describes one endpoint as the configuration file gives it.
type Config struct {
	ID           string   `yaml:"id"`     // vpce- + 17 hex; generated and kept when empty
	VPCID        string   `yaml:"vpc_id"` // a label, e.g. vpc-0a1b2c3d
	Listen       []string `yaml:"listen"`
	Services     []string `yaml:"services"`
	DNSNames     []string `yaml:"dns_names"`
	AllowedCIDRs []string `yaml:"allowed_cidrs"`
	// TrustedProxies are the CIDRs of proxies whose PROXY-protocol header
	// and X-Forwarded-For are believed on this endpoint, in addition to
	// the global trusted_proxies setting.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Policy is the endpoint policy document (JSON); empty means AWS's
	// default, full access (EPOL-02).
	Policy string `yaml:"policy"`
	// PolicyFile names a file holding the policy instead.
	PolicyFile string `yaml:"policy_file"`
	TLS        struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	// Insecure serves plain HTTP; allowed only when every listen address is
	// loopback.
	Insecure bool `yaml:"insecure"`
}

// Endpoint is a validated endpoint.
type Endpoint struct {
	ID       string
	VPCID    string
	Listen   []string
	Services []string
	DNSNames []string
	Allowed  []netip.Prefix // empty: every source
	Policy   []byte         // nil: the default full-access policy
	CertFile string
	KeyFile  string
	Insecure bool
	// Public marks the default listener (not a VPC endpoint).
	Public bool
	// TrustedProxies may name the client with the PROXY protocol or
	// X-Forwarded-For (proxy.go); empty: the TCP peer is the source.
	TrustedProxies []netip.Prefix
}

var (
	idRE  = regexp.MustCompile(`^vpce-[0-9a-f]{17}$`)
	vpcRE = regexp.MustCompile(`^vpc-[0-9a-z]{1,32}$`)
	dnsRE = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// NewID returns a fresh endpoint ID.
func NewID() string {
	var b [9]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("endpoint: crypto/rand failed: " + err.Error())
	}
	return "vpce-" + hex.EncodeToString(b[:])[:17]
}

// Validate checks every endpoint and reports every problem at once; ids
// supplies generated IDs for endpoints without one (keyed by position).
// readPolicy reads PolicyFile; checkPolicy parses a policy document.
func Validate(cfgs []Config, ids func(i int) string, readPolicy func(string) ([]byte, error), checkPolicy func([]byte) error) ([]*Endpoint, error) {
	var errs []error
	problem := func(i int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("endpoints[%d]: %s", i, fmt.Sprintf(format, args...)))
	}
	seenID := map[string]int{}
	seenListen := map[string]int{}
	var out []*Endpoint
	for i, c := range cfgs {
		e := &Endpoint{ID: c.ID, VPCID: c.VPCID, DNSNames: c.DNSNames, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile, Insecure: c.Insecure}
		if e.ID == "" && ids != nil {
			e.ID = ids(i)
		}
		if !idRE.MatchString(e.ID) {
			problem(i, "id %q must be vpce- followed by 17 lowercase hex digits", e.ID)
		} else if j, dup := seenID[e.ID]; dup {
			problem(i, "id %s is also the id of endpoints[%d]", e.ID, j)
		} else {
			seenID[e.ID] = i
		}
		if c.VPCID != "" && !vpcRE.MatchString(c.VPCID) {
			problem(i, "vpc_id %q must look like vpc-0a1b2c3d", c.VPCID)
		}
		if len(c.Listen) == 0 {
			problem(i, "listen: at least one address is required")
		}
		allLoopback := true
		for _, l := range c.Listen {
			ap, err := netip.ParseAddrPort(l)
			if err != nil {
				problem(i, "listen %q is not an IP:port", l)
				continue
			}
			if !ap.Addr().IsLoopback() {
				allLoopback = false
			}
			if j, dup := seenListen[l]; dup {
				problem(i, "listen %s is also used by endpoints[%d]", l, j)
			}
			seenListen[l] = i
			e.Listen = append(e.Listen, l)
		}
		if c.Insecure && !allLoopback {
			problem(i, "insecure (plain HTTP) is allowed only on loopback listen addresses")
		}
		if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
			problem(i, "tls: cert_file and key_file go together")
		}
		if c.Insecure && c.TLS.CertFile != "" {
			problem(i, "insecure and tls exclude each other")
		}
		if len(c.Services) == 0 {
			problem(i, "services: at least one of %s is required", strings.Join(allServices, ", "))
		}
		for _, s := range c.Services {
			if !slices.Contains(allServices, s) {
				problem(i, "service %q is not one of %s", s, strings.Join(allServices, ", "))
			} else if !slices.Contains(e.Services, s) {
				e.Services = append(e.Services, s)
			}
		}
		for _, d := range c.DNSNames {
			if len(d) > 253 || !dnsRE.MatchString(d) {
				problem(i, "dns_names: %q is not a lowercase DNS name", d)
			}
		}
		prefixes := func(field string, cidrs []string) []netip.Prefix {
			var out []netip.Prefix
			for _, cidr := range cidrs {
				p, err := ParsePrefix(cidr)
				if err != nil {
					problem(i, "%s: %q is not a CIDR such as 10.0.0.0/16", field, cidr)
					continue
				}
				out = append(out, p)
			}
			return out
		}
		e.Allowed = prefixes("allowed_cidrs", c.AllowedCIDRs)
		e.TrustedProxies = prefixes("trusted_proxies", c.TrustedProxies)
		if c.Policy != "" && c.PolicyFile != "" {
			problem(i, "policy and policy_file exclude each other")
		}
		doc := []byte(c.Policy)
		if c.PolicyFile != "" && readPolicy != nil {
			b, err := readPolicy(c.PolicyFile)
			if err != nil {
				problem(i, "policy_file: %v", err)
			}
			doc = b
		}
		if len(doc) > 0 {
			if checkPolicy != nil {
				if err := checkPolicy(doc); err != nil {
					problem(i, "policy: %v", err)
				}
			}
			e.Policy = doc
		}
		out = append(out, e)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Serves reports whether the endpoint serves service.
func (e *Endpoint) Serves(service string) bool {
	return e.Public || slices.Contains(e.Services, service)
}

// AllowsSource reports whether a connection from addr may be accepted.
func (e *Endpoint) AllowsSource(addr netip.Addr) bool {
	if len(e.Allowed) == 0 {
		return true
	}
	addr = addr.Unmap()
	for _, p := range e.Allowed {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// AllowsHost reports whether a request's Host header names the endpoint:
// any host when it has no DNS names; otherwise one of them (a "*." name
// matches one label), compared without the port and case-insensitively.
func (e *Endpoint) AllowsHost(host string) bool {
	if len(e.DNSNames) == 0 {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, d := range e.DNSNames {
		if d == host {
			return true
		}
		if rest, ok := strings.CutPrefix(d, "*."); ok {
			if i := strings.IndexByte(host, '.'); i > 0 && host[i+1:] == rest {
				return true
			}
		}
	}
	return false
}

type ctxKey struct{}

// With returns ctx carrying the endpoint a request arrived through.
func With(ctx context.Context, e *Endpoint) context.Context {
	return context.WithValue(ctx, ctxKey{}, e)
}

// For returns the endpoint a request arrived through, or nil.
func For(ctx context.Context) *Endpoint {
	e, _ := ctx.Value(ctxKey{}).(*Endpoint)
	return e
}

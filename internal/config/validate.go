package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

var (
	regionRE    = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$`)
	accountIDRE = regexp.MustCompile(`^[0-9]{12}$`)
)

// rootKeySize is the root key's length in bytes.
const rootKeySize = 32

// Validate checks every setting and returns all problems at once, each a
// *SettingError naming the setting and where its value came from, joined
// with errors.Join; nil if the configuration is usable. Load calls it.
func (c Config) Validate() error {
	return errors.Join(c.problems()...)
}

func (c Config) problems() []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	listenOK := true
	if _, err := splitAddr(c.Listen); err != nil {
		listenOK = false
		add(c.problem(sListen, "%v", err))
	}
	if c.DataDir == "" {
		add(c.problem(sData, "must not be empty"))
	}
	if !regionRE.MatchString(c.Region) {
		add(c.problem(sRegion, "%q is not a region name such as us-east-1", c.Region))
	}
	if c.AccountID != "" && !accountIDRE.MatchString(c.AccountID) {
		add(c.problem(sAccountID, "%q is not a 12-digit account ID (leave it empty to have one generated)", c.AccountID))
	}
	add(c.checkRootKey())
	if (c.AdminAccessKeyID == "") != (c.AdminSecretAccessKey == "") {
		add(c.problem(sAdminAccessKeyID, "must be set together with %s", settings[sAdminSecretAccessKey].env))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add(c.problem(sLogLevel, "%q is not a log level (want debug, info, warn or error)", c.LogLevel))
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		add(c.problem(sLogFormat, "%q is not a log format (want json or text)", c.LogFormat))
	}
	if c.Pprof != "" {
		if host, err := splitAddr(c.Pprof); err != nil {
			add(c.problem(sPprof, "%v", err))
		} else if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
			add(c.problem(sPprof, "%q must be on a loopback IP, such as 127.0.0.1:6060", c.Pprof))
		}
	}
	if c.ShutdownTimeout <= 0 {
		add(c.problem(sShutdownTimeout, "%v must be greater than zero", c.ShutdownTimeout))
	}
	if listenOK {
		add(c.checkAnonymousNetworkAccess())
	}
	return errs
}

// checkAnonymousNetworkAccess is the rule that keeps unauthenticated access
// off the network: every request is authenticated, and the
// InsecureAllowAnonymous escape for local testing works only on a loopback
// Listen.
func (c Config) checkAnonymousNetworkAccess() error {
	host, err := splitAddr(c.Listen)
	if err != nil || isLoopback(host) || !c.InsecureAllowAnonymous {
		return nil
	}
	return c.problem(sInsecureAllowAnonymous, "anonymous access is allowed only on a loopback listen address, not %q", c.Listen)
}

// checkRootKey checks the secret. Its messages never include the value,
// not even in part.
func (c Config) checkRootKey() error {
	if c.RootKey == "" {
		return nil
	}
	var errs []error
	// The same form crypto/rootkey.FromBase64 reads: surrounding
	// whitespace is ignored, inner line breaks (which the decoder would
	// skip) are not.
	s := strings.TrimSpace(c.RootKey)
	key, err := base64.StdEncoding.Strict().DecodeString(s)
	switch {
	case err != nil || strings.ContainsAny(s, "\r\n"):
		errs = append(errs, c.problem(sRootKey, "is not valid standard base64"))
	case len(key) != rootKeySize:
		errs = append(errs, c.problem(sRootKey, "decodes to %d bytes; want %d", len(key), rootKeySize))
	}
	clear(key)
	if c.RootKeyFile != "" {
		errs = append(errs, c.problem(sRootKey, "cannot be used together with root_key_file (%s); set only one of them", c.where(sRootKeyFile)))
	}
	return errors.Join(errs...)
}

// splitAddr checks that addr is host:port with a numeric port and a host
// that is an IP literal or "localhost", and returns the host.
func splitAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	switch {
	case host == "":
		return "", fmt.Errorf("%q has no host; use 0.0.0.0 or [::] for every interface", addr)
	case host == "localhost":
		return host, nil
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return "", fmt.Errorf("%q: host %q is not an IP address or localhost", addr, host)
	}
	return host, nil
}

// isLoopback reports whether host, as returned by splitAddr, is loopback.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

package endpoint

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// TLSConfig returns the server TLS configuration every non-insecure
// endpoint uses: TLS 1.2 or later with modern AEAD suites, HTTP/2, and the
// certificate from certs (reloadable).
func TLSConfig(certs *Certificate) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{ // TLS 1.2; TLS 1.3 suites are always modern
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: certs.get,
	}
}

// Certificate is a server certificate loaded from files, replaced
// atomically by Reload (on SIGHUP or when the files change).
type Certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
	mu                sync.Mutex
	mtime             time.Time
}

// LoadCertificate loads a certificate and key and checks they match.
func LoadCertificate(certFile, keyFile string) (*Certificate, error) {
	c := &Certificate{certFile: certFile, keyFile: keyFile}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again; on error the old certificate stays.
func (c *Certificate) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("certificate %s with key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cur.Store(&pair)
	c.mtime = modTime(c.certFile, c.keyFile)
	return nil
}

// ReloadIfChanged reloads when either file's modification time changed.
func (c *Certificate) ReloadIfChanged() (bool, error) {
	c.mu.Lock()
	changed := !modTime(c.certFile, c.keyFile).Equal(c.mtime)
	c.mu.Unlock()
	if !changed {
		return false, nil
	}
	return true, c.Reload()
}

func modTime(files ...string) time.Time {
	var t time.Time
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

func (c *Certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// CA is Coffer's private certificate authority for endpoints without an
// operator-supplied certificate: generated once into dir (ca.crt, ca.key
// 0600); clients trust ca.crt.
type CA struct {
	Dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// LoadOrCreateCA loads the CA from dir or creates it.
func LoadOrCreateCA(dir string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca := &CA{Dir: dir}
	certPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if pair, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		ca.cert, err = x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			return nil, err
		}
		k, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
		if !ok {
			return nil, errors.New("endpoint: ca.key is not an ECDSA key")
		}
		ca.key = k
		return ca, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("endpoint: CA in %s: %w", dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Coffer private CA", Organization: []string{"Coffer"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	if err := writePEM(certPath, keyPath, der, key); err != nil {
		return nil, err
	}
	ca.cert, _ = x509.ParseCertificate(der)
	ca.key = key
	return ca, nil
}

// Issue returns the files of a server certificate for an endpoint, signed
// by the CA, with SANs from its DNS names and listen IPs; an existing
// certificate is reused while its SANs match and it has 30 days left.
func (ca *CA) Issue(e *Endpoint) (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(ca.Dir, e.ID+".crt"), filepath.Join(ca.Dir, e.ID+".key")
	var ips []net.IP
	for _, l := range e.Listen {
		if ap, err := netip.ParseAddrPort(l); err == nil {
			ips = append(ips, ap.Addr().AsSlice())
		}
	}
	dns := slices.Clone(e.DNSNames)
	if len(dns) == 0 {
		dns = []string{"localhost"}
	}
	if pair, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		if c, err := x509.ParseCertificate(pair.Certificate[0]); err == nil &&
			time.Until(c.NotAfter) > 30*24*time.Hour && slices.Equal(c.DNSNames, dns) && sameIPs(c.IPAddresses, ips) &&
			c.CheckSignatureFrom(ca.cert) == nil {
			return certFile, keyFile, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: dns[0], Organization: []string{"Coffer"}, OrganizationalUnit: []string{e.ID}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return "", "", err
	}
	return certFile, keyFile, writePEM(certFile, keyFile, der, key)
}

func sameIPs(a, b []net.IP) bool {
	return slices.EqualFunc(a, b, func(x, y net.IP) bool { return x.Equal(y) })
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("endpoint: crypto/rand failed: " + err.Error())
	}
	return n
}

func writePEM(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

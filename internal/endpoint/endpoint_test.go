package endpoint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	bad := []Config{
		{ID: "vpce-123", Listen: []string{"10.0.0.1"}, Services: []string{"ecr.dkr", "ftp"},
			AllowedCIDRs: []string{"10.0.0.0/33"}, DNSNames: []string{"Bad_Name"}, Insecure: true},
		{ID: "vpce-0123456789abcdef0", Listen: []string{"127.0.0.2:443"}, Services: []string{"ecr.api"}, Policy: "{", VPCID: "vpc-1"},
		{ID: "vpce-0123456789abcdef0", Listen: []string{"127.0.0.2:443"}, Services: []string{"s3"}, VPCID: "notavpc"},
	}
	_, err := Validate(bad, nil, nil, func(b []byte) error {
		if string(b) == "{" {
			return errors.New("does not parse")
		}
		return nil
	})
	if err == nil {
		t.Fatal("Validate accepted bad endpoints")
	}
	for _, want := range []string{
		`endpoints[0]: id "vpce-123"`, `listen "10.0.0.1" is not an IP:port`, `service "ftp"`,
		`"10.0.0.0/33" is not a CIDR`, `"Bad_Name" is not a lowercase DNS name`,
		`endpoints[1]: policy: does not parse`,
		`endpoints[2]: id vpce-0123456789abcdef0 is also the id of endpoints[1]`, `listen 127.0.0.2:443 is also used by endpoints[1]`,
		`vpc_id "notavpc"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	eps, err := Validate([]Config{{Listen: []string{"127.0.0.2:0"}, Services: []string{"ecr.dkr"}, AllowedCIDRs: []string{"127.0.0.2"}}},
		func(int) string { return NewID() }, nil, nil)
	if err != nil || !idRE.MatchString(eps[0].ID) || eps[0].Allowed[0].String() != "127.0.0.2/32" {
		t.Fatalf("Validate = %+v, %v", eps, err)
	}
}

func TestHostAndServices(t *testing.T) {
	t.Parallel()
	e := &Endpoint{DNSNames: []string{"api.ecr.us-east-1.coffer.internal", "*.dkr.ecr.us-east-1.coffer.internal"}, Services: []string{ServiceECRDKR}}
	for host, want := range map[string]bool{
		"api.ecr.us-east-1.coffer.internal:443":          true,
		"API.ECR.us-east-1.coffer.internal":              true,
		"123456789012.dkr.ecr.us-east-1.coffer.internal": true,
		"a.b.dkr.ecr.us-east-1.coffer.internal":          false,
		"127.0.0.1:5000":                                 false,
		"evil.example":                                   false,
	} {
		if got := e.AllowsHost(host); got != want {
			t.Errorf("AllowsHost(%q) = %v", host, got)
		}
	}
	if !e.Serves(ServiceECRDKR) || e.Serves(ServiceECRAPI) {
		t.Fatal("Serves is wrong")
	}
}

// A client from a disallowed address never gets an HTTP response; an
// allowed one does.
func TestSourceFilterAtAccept(t *testing.T) {
	t.Parallel()
	e := &Endpoint{ID: NewID(), Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	rejected := make(chan netip.Addr, 8) // told from the accept goroutine
	ln, err := Listen(e, "127.0.0.1:0", func(a netip.Addr) { rejected <- a })
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }),
		ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/"
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	}
	resp, err := from("127.0.0.1").Get(url)
	if err != nil {
		t.Fatalf("allowed source: %v", err)
	}
	resp.Body.Close()
	start := time.Now()
	if resp, err := from("127.0.0.3").Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("disallowed source got an HTTP response: %s", resp.Status)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("the refusal was slow; it must happen at accept")
	}
	select {
	case a := <-rejected:
		if a.String() != "127.0.0.3" {
			t.Fatalf("rejected %v, want 127.0.0.3", a)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the refusal was not reported")
	}
}

// The generated CA signs a certificate that a Go client and curl verify;
// a replaced certificate is served after Reload without a restart.
func TestGeneratedTLSAndReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &Endpoint{ID: NewID(), Listen: []string{"127.0.0.1:0"}, DNSNames: []string{"registry.coffer.test"}}
	certFile, keyFile, err := ca.Issue(e)
	if err != nil {
		t.Fatal(err)
	}
	if again, _, err := ca.Issue(e); err != nil || again != certFile {
		t.Fatalf("re-issue = %s, %v", again, err)
	}
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode())
	}
	certs, err := LoadCertificate(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(e, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{TLSConfig: TLSConfig(certs), ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })}
	go srv.ServeTLS(ln, "", "")
	defer srv.Close()

	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	pool.AppendCertsFromPEM(caPEM)
	addr := ln.Addr().String()
	client := func() *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			ForceAttemptHTTP2: true,
			TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "registry.coffer.test"},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		}}
	}
	resp, err := client().Get("https://registry.coffer.test/")
	if err != nil {
		t.Fatalf("TLS with the generated CA: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0" || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("proto %s, TLS %x", body, resp.TLS.Version)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl is needed for this test: %v", err)
	}
	out, err := exec.Command("curl", "-sS", "--cacert", filepath.Join(dir, "ca.crt"), "--resolve", "registry.coffer.test:"+strings.Split(addr, ":")[1]+":127.0.0.1",
		"https://registry.coffer.test:"+strings.Split(addr, ":")[1]+"/").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "HTTP/") {
		t.Fatalf("curl --cacert: %v %s", err, out)
	}
	if out, err := exec.Command("curl", "-sS", "https://"+addr+"/").CombinedOutput(); err == nil {
		t.Fatalf("curl without the CA trusted the certificate: %s", out)
	}

	// Replace the certificate files (new SANs) and reload.
	e.DNSNames = []string{"renamed.coffer.test"}
	if _, _, err := ca.Issue(e); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Minute)
	os.Chtimes(certFile, future, future)
	if changed, err := certs.ReloadIfChanged(); err != nil || !changed {
		t.Fatalf("ReloadIfChanged = %v, %v", changed, err)
	}
	c := client()
	c.Transport.(*http.Transport).TLSClientConfig.ServerName = "renamed.coffer.test"
	resp, err = c.Get("https://renamed.coffer.test/")
	if err != nil {
		t.Fatalf("after reload: %v", err)
	}
	resp.Body.Close()
}

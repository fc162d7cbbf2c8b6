package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"
	"github.com/pires/go-proxyproto"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/endpoint"
)

// endpointTestConfig is the base configuration of the tests that run the
// real server (Run) with endpoints on loopback addresses.
func endpointTestConfig(t testing.TB) config.Config {
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.CreateOnPush = true
	cfg.AccountID = "123456789012"
	cfg.AdminAccessKeyID, cfg.AdminSecretAccessKey = adminID, adminSecret
	cfg.Listen = freePort(t, "127.0.0.1")
	return cfg
}

// runServer runs cfg until the test ends and waits for it to be ready.
func runServer(t testing.TB, cfg config.Config) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitReady(t, "http://"+cfg.Listen)
}

// sourceClient returns a client whose connections come from src and open
// with header (a PROXY protocol header; nil: none), and whose requests
// carry X-Forwarded-For: xff (unless empty). Connections are not reused.
func sourceClient(src string, header []byte, xff string, tc *tls.Config) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 3 * time.Second}
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err == nil && header != nil {
				if _, err = c.Write(header); err != nil {
					c.Close()
					return nil, err
				}
			}
			return c, err
		}}
	return &http.Client{Timeout: 5 * time.Second, Transport: xffTransport{next: tr, xff: xff}}
}

// xffTransport adds X-Forwarded-For after signing, as a proxy would.
type xffTransport struct {
	next http.RoundTripper
	xff  string
}

func (t xffTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.xff != "" {
		r = r.Clone(r.Context())
		r.Header.Set("X-Forwarded-For", t.xff)
	}
	return t.next.RoundTrip(r)
}

// proxyV returns a PROXY protocol header (version 1 or 2) naming client.
func proxyV(t testing.TB, version byte, client string) []byte {
	t.Helper()
	h := &proxyproto.Header{Version: version, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr:      &net.TCPAddr{IP: net.ParseIP(client), Port: 41000},
		DestinationAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 443}}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ecrVia is an ECR client for url over hc, one attempt per call.
func ecrVia(url string, hc *http.Client, creds aws.CredentialsProvider) *ecr.Client {
	o := ecr.Options{Region: "us-east-1", BaseEndpoint: aws.String(url), Credentials: creds, RetryMaxAttempts: 1}
	if hc != nil {
		o.HTTPClient = hc
	}
	return ecr.New(o)
}

// isAPIError reports whether err is an answer from the server (not a
// refused or reset connection).
func isAPIError(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae)
}

func apiError(err error) (code, msg string) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode(), ae.ErrorMessage()
	}
	return "", ""
}

// TestTrustedProxies: aws:SourceIp, the audit record's sourceIPAddress and
// an endpoint's allowed CIDRs use the client a trusted proxy names with
// X-Forwarded-For or the PROXY protocol; anyone else's header is ignored
// (X-Forwarded-For) or refused (PROXY) (issue #7).
func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	const (
		vpce     = "vpce-0ddddddddddddddd4"
		proxy    = "127.0.0.6" // trusted everywhere (trusted_proxies)
		epProxy  = "127.0.0.8" // trusted on the endpoint only
		allowed  = "127.0.0.2" // the endpoint's allowed source
		outsider = "127.0.0.3"
		office   = "198.51.100.7"
		elsewhr  = "203.0.113.5"
	)
	cfg := endpointTestConfig(t)
	cfg.TrustedProxies = proxy
	addrE := freePort(t, "127.0.0.1")
	cfg.Endpoints = []endpoint.Config{{ID: vpce, Listen: []string{addrE}, Services: []string{"ecr.api", "ecr.dkr"},
		AllowedCIDRs: []string{allowed + "/32"}, TrustedProxies: []string{epProxy}}}
	runServer(t, cfg)
	pub := "http://" + cfg.Listen
	admin := staticCreds(adminID, adminSecret)
	ctx := context.Background()

	// A repository only reachable from the office network: a Deny on
	// NotIpAddress, and an Allow on IpAddress for a user with no identity
	// policy of its own.
	if _, err := ecrVia(pub, nil, admin).CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("proxied/app")}); err != nil {
		t.Fatal(err)
	}
	ic := iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(pub), Credentials: admin})
	if _, err := ic.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("ipreader")}); err != nil {
		t.Fatal(err)
	}
	k, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("ipreader")})
	if err != nil {
		t.Fatal(err)
	}
	reader := staticCreds(aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey))
	repoPolicy := `{"Version":"2012-10-17","Statement":[
		{"Sid":"OnlyFromTheOffice","Effect":"Deny","Principal":"*","Action":"ecr:BatchGetImage",
		 "Condition":{"NotIpAddress":{"aws:SourceIp":"198.51.100.0/24"}}},
		{"Sid":"ReaderInTheOffice","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/ipreader"},"Action":"ecr:BatchGetImage",
		 "Condition":{"IpAddress":{"aws:SourceIp":"198.51.100.0/24"}}}]}`
	if _, err := ecrVia(pub, nil, admin).SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{
		RepositoryName: aws.String("proxied/app"), PolicyText: aws.String(repoPolicy)}); err != nil {
		t.Fatal(err)
	}
	batchGet := func(hc *http.Client, creds aws.CredentialsProvider) error {
		_, err := ecrVia(pub, hc, creds).BatchGetImage(ctx, &ecr.BatchGetImageInput{RepositoryName: aws.String("proxied/app"),
			ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("v1")}}})
		return err
	}
	const repoARN = "arn:aws:ecr:us-east-1:123456789012:repository/proxied/app"

	t.Run("X-Forwarded-For from a trusted proxy sets aws:SourceIp", func(t *testing.T) {
		for _, tc := range []struct {
			name       string
			src, xff   string
			creds      aws.CredentialsProvider
			wantDenied string // "" allowed; else the AccessDenied message's tail
		}{
			{"office client through the proxy", proxy, office, admin, ""},
			{"spoofed left-most entry is not believed", proxy, office + ", " + elsewhr, admin, "with an explicit deny in a resource-based policy"},
			{"right-most untrusted entry is the client", proxy, elsewhr + ", " + office, admin, ""},
			{"proxy without the header: the proxy itself", proxy, "", admin, "with an explicit deny in a resource-based policy"},
			{"untrusted peer's header is ignored", "127.0.0.1", office, admin, "with an explicit deny in a resource-based policy"},
			{"IpAddress allows the reader from the office", proxy, office, reader, ""},
			{"and denies it elsewhere", proxy, elsewhr, reader, "with an explicit deny in a resource-based policy"},
			{"untrusted peer cannot claim the office", "127.0.0.9", office, reader, "with an explicit deny in a resource-based policy"},
		} {
			err := batchGet(sourceClient(tc.src, nil, tc.xff, nil), tc.creds)
			code, msg := apiError(err)
			switch {
			case tc.wantDenied == "" && err != nil:
				t.Errorf("%s: %v", tc.name, err)
			case tc.wantDenied != "" && (code != "AccessDeniedException" || !strings.HasSuffix(msg, "ecr:BatchGetImage on resource: "+repoARN+" "+tc.wantDenied)):
				t.Errorf("%s: %v; want AccessDeniedException ... %s", tc.name, err, tc.wantDenied)
			}
		}
	})

	t.Run("the audit record's sourceIPAddress is the resolved client", func(t *testing.T) {
		ct := cloudtrail.New(cloudtrail.Options{Region: "us-east-1", BaseEndpoint: aws.String(pub), Credentials: admin})
		out, err := ct.LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: []cttypes.LookupAttribute{
			{AttributeKey: cttypes.LookupAttributeKeyEventName, AttributeValue: aws.String("BatchGetImage")}}})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range out.Events {
			var rec struct {
				SourceIPAddress string `json:"sourceIPAddress"`
				ErrorCode       string `json:"errorCode"`
			}
			if err := json.Unmarshal([]byte(aws.ToString(e.CloudTrailEvent)), &rec); err != nil {
				t.Fatal(err)
			}
			seen[rec.SourceIPAddress+" "+rec.ErrorCode] = true
		}
		for _, want := range []string{office + " ", elsewhr + " AccessDeniedException", proxy + " AccessDeniedException",
			"127.0.0.1 AccessDeniedException", "127.0.0.9 AccessDeniedException"} {
			if !seen[want] {
				t.Errorf("no BatchGetImage record with sourceIPAddress/errorCode %q; have %v", want, seen)
			}
		}
	})

	caPEM, err := os.ReadFile(filepath.Join(cfg.DataDir, "tls", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tc := &tls.Config{RootCAs: pool}
	urlE := "https://" + addrE
	getToken := func(hc *http.Client) error {
		_, err := ecrVia(urlE, hc, admin).GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
		return err
	}

	t.Run("PROXY protocol from a trusted proxy names the client", func(t *testing.T) {
		for _, c := range []struct {
			from    string
			version byte
		}{{proxy, 1}, {proxy, 2}, {epProxy, 1}, {epProxy, 2}} {
			if err := getToken(sourceClient(c.from, proxyV(t, c.version, allowed), "", tc)); err != nil {
				t.Errorf("PROXY v%d from %s naming %s: %v", c.version, c.from, allowed, err)
			}
			// A client outside the allowed CIDRs is reset before TLS.
			err := getToken(sourceClient(c.from, proxyV(t, c.version, outsider), "", tc))
			if err == nil || isAPIError(err) {
				t.Errorf("PROXY v%d from %s naming %s = %v, want no response", c.version, c.from, outsider, err)
			}
		}
	})

	t.Run("PROXY protocol from an untrusted peer is refused", func(t *testing.T) {
		if err := getToken(sourceClient(allowed, nil, "", tc)); err != nil {
			t.Fatalf("direct from %s: %v", allowed, err)
		}
		for _, v := range []byte{1, 2} {
			if err := getToken(sourceClient(allowed, proxyV(t, v, allowed), "", tc)); err == nil || isAPIError(err) {
				t.Errorf("PROXY v%d from untrusted %s = %v, want no response", v, allowed, err)
			}
			// The endpoint's own trusted proxy is not trusted on the public listener.
			resp, err := sourceClient(epProxy, proxyV(t, v, office), "", nil).Get(pub + "/healthz")
			if err == nil {
				resp.Body.Close()
				t.Errorf("PROXY v%d from %s on the public listener got %s", v, epProxy, resp.Status)
			}
		}
	})

	t.Run("X-Forwarded-For meets the endpoint's allowed CIDRs per request", func(t *testing.T) {
		if err := getToken(sourceClient(proxy, nil, allowed, tc)); err != nil {
			t.Fatalf("proxy naming %s: %v", allowed, err)
		}
		if err := getToken(sourceClient(allowed, nil, outsider, tc)); err != nil {
			t.Fatalf("an untrusted peer's header is ignored: %v", err)
		}
		want := "Source IP " + outsider + " is not allowed to reach VPC endpoint " + vpce
		for _, xff := range []string{outsider, allowed + ", " + outsider} {
			err := getToken(sourceClient(proxy, nil, xff, tc))
			var re interface{ HTTPStatusCode() int }
			if code, msg := apiError(err); code != "AccessDeniedException" || msg != want || !errors.As(err, &re) || re.HTTPStatusCode() != 403 {
				t.Errorf("XFF %q through the proxy = %v; want 403 AccessDeniedException %q", xff, err, want)
			}
		}
		// The proxy's own address is not an allowed source.
		if code, _ := apiError(getToken(sourceClient(proxy, nil, "", tc))); code != "AccessDeniedException" {
			t.Errorf("the proxy without a header got %q", code)
		}
		// The /v2/ door answers in its own format.
		resp, err := sourceClient(proxy, nil, outsider, tc).Get(urlE + "/v2/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var oci struct {
			Errors []struct{ Code, Message string } `json:"errors"`
		}
		if resp.StatusCode != 403 || json.Unmarshal(body, &oci) != nil || len(oci.Errors) != 1 || oci.Errors[0].Code != "DENIED" || oci.Errors[0].Message != want {
			t.Errorf("/v2/ = %s %s", resp.Status, body)
		}
		// So do the routes outside the doors.
		for _, path := range []string{"/metrics", "/healthz"} {
			resp, err := sourceClient(proxy, nil, outsider, tc).Get(urlE + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 403 {
				t.Errorf("%s for %s through the proxy = %s, want 403", path, outsider, resp.Status)
			}
		}
	})
}

package server

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/endpoint"
	"github.com/cofferhq/coffer/internal/policy"
)

// BenchmarkEndpointRefusal is issue #7's "a disallowed source is refused in
// under 1 ms with no TLS handshake": the real server (Run) with a TLS
// endpoint that allows 127.0.0.2/32; one op connects from 127.0.0.3 and
// reads until the reset. p50-µs, p99-µs and max-µs are per connection,
// from the start of connect to the reset. "allowed-handshake" is the same endpoint
// from 127.0.0.2 up to a completed TLS handshake, for scale.
func BenchmarkEndpointRefusal(b *testing.B) {
	cfg := endpointTestConfig(b)
	addr := freePort(b, "127.0.0.1")
	cfg.Endpoints = []endpoint.Config{{ID: "vpce-0bbbbbbbbbbbbbbb7", Listen: []string{addr}, Services: []string{"ecr.api", "ecr.dkr"},
		AllowedCIDRs: []string{"127.0.0.2/32"}}}
	runServer(b, cfg)

	// Outside the timed loops: a TLS client from the disallowed address
	// never gets a ServerHello, only the reset.
	c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	herr := tls.Client(c, &tls.Config{InsecureSkipVerify: true}).Handshake()
	c.Close()
	if !errors.Is(herr, syscall.ECONNRESET) && !errors.Is(herr, syscall.EPIPE) {
		b.Fatalf("TLS handshake from 127.0.0.3 = %v, want a connection reset", herr)
	}

	b.Run("disallowed-reset", func(b *testing.B) {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
		lat := make([]time.Duration, 0, b.N)
		var buf [1]byte
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			c, err := d.Dial("tcp", addr)
			if errors.Is(err, syscall.ECONNRESET) { // the reset beat connect's return
				lat = append(lat, time.Since(start))
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			n, err := c.Read(buf[:])
			lat = append(lat, time.Since(start))
			c.Close()
			if n != 0 || !errors.Is(err, syscall.ECONNRESET) {
				b.Fatalf("read from a refused connection = %d, %v; want a reset", n, err)
			}
		}
		b.StopTimer()
		reportLatency(b, lat)
	})

	b.Run("allowed-handshake", func(b *testing.B) {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			c, err := d.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
			err = tc.Handshake()
			lat = append(lat, time.Since(start))
			tc.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportLatency(b, lat)
	})
}

// reportLatency adds the median, the 99th percentile and the maximum of
// per-op latencies.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds())/1e3, "max-µs")
}

// BenchmarkManifestHEADEndpointPolicy is issue #7's "endpoint-policy
// evaluation adds at most 5% to manifest-HEAD throughput": authenticated
// manifest HEADs (token check, identity and repository policies, audit
// record) through the public listener (no endpoint, no gate), through an
// endpoint with the default full-access policy, and through one with
// J-09 (three statements, one Deny), 8 clients at once. The variants take
// turns for headRounds rounds (names "...#01", "#02" ...), in a rotating
// order, so that the drift of a shared machine hits them alike; compare
// their medians. req/cpu-s (client and server share the process) is the
// steadier figure on a noisy machine.
func BenchmarkManifestHEADEndpointPolicy(b *testing.B) {
	cfg := endpointTestConfig(b)
	addrDefault, addrJ09 := freePort(b, "127.0.0.1"), freePort(b, "127.0.0.1")
	cfg.Endpoints = []endpoint.Config{
		{ID: "vpce-0ddddddddddddddd8", Listen: []string{addrDefault}, Services: []string{"ecr.api", "ecr.dkr"}, Insecure: true},
		{ID: "vpce-0eeeeeeeeeeeeeee9", Listen: []string{addrJ09}, Services: []string{"ecr.api", "ecr.dkr"}, Insecure: true, Policy: policyJ09},
	}
	runServer(b, cfg)
	tok := loginToken(b, ecrVia("http://"+cfg.Listen, nil, staticCreds(adminID, adminSecret)))
	pushBenchImage(b, cfg.Listen, tok)
	variants := []struct{ name, addr string }{
		{"public-no-gate", cfg.Listen},
		{"endpoint-default-policy", addrDefault},
		{"endpoint-J-09-policy", addrJ09},
	}
	for round := range headRounds {
		for i := range variants {
			v := variants[(i+round)%len(variants)]
			b.Run(v.name, func(b *testing.B) { benchHEAD(b, "http://"+v.addr+"/v2/bench/app/manifests/v1", tok) })
		}
	}
}

// headRounds is how many turns each variant of
// BenchmarkManifestHEADEndpointPolicy gets.
const headRounds = 8

// benchHEAD runs manifest HEADs on url from 8 clients at once, with the
// registry token tok ("" for none).
func benchHEAD(b *testing.B, url, tok string) {
	const clients = 8
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * clients}}
	defer hc.CloseIdleConnections()
	head := func() error {
		req, _ := http.NewRequest(http.MethodHead, url, nil)
		if tok != "" {
			req.SetBasicAuth("AWS", tok)
		}
		req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New("HEAD: " + resp.Status)
		}
		return nil
	}
	if err := head(); err != nil {
		b.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((clients + procs - 1) / procs)
	b.ResetTimer()
	cpu0 := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := head(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	cpu := processCPU() - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "req/cpu-s")
	}
}

// BenchmarkEndpointGate is the endpoint policy's own cost in the decision
// of a manifest HEAD (ecr:BatchGetImage by an IAM user whose identity
// policy allows it): policy.Decide without a gate, with the default
// full-access endpoint policy, and with J-09. The difference, set against
// a HEAD's CPU time (1 / req/cpu-s above), is the overhead the target
// bounds, free of the network and disk noise.
func BenchmarkEndpointGate(b *testing.B) {
	identity, _ := policy.Managed("AmazonEC2ContainerRegistryFullAccess")
	j09, err := policy.Parse([]byte(policyJ09), policy.Endpoint)
	if err != nil {
		b.Fatal(err)
	}
	req := &policy.Request{
		Principal: policy.Principal{ARN: "arn:aws:iam::123456789012:user/admin", Account: "123456789012", Type: "IAMUser", ID: "AIDAEXAMPLE"},
		Action:    "ecr:BatchGetImage",
		Resource:  "arn:aws:ecr:us-east-1:123456789012:repository/bench/app",
		Context: policy.NewContext(map[string][]string{
			"aws:SourceIp": {"127.0.0.1"}, "aws:SecureTransport": {"false"}, "aws:SourceVpce": {"vpce-0eeeeeeeeeeeeeee9"},
			"aws:PrincipalArn": {"arn:aws:iam::123456789012:user/admin"}, "aws:PrincipalAccount": {"123456789012"},
		}),
	}
	for _, v := range []struct {
		name  string
		gates []policy.Gate
	}{
		{"no-gate", nil},
		{"default-policy", []policy.Gate{{Name: "VPC endpoint policy", Policies: []*policy.Policy{policy.DefaultEndpointPolicy()}}}},
		{"J-09-policy", []policy.Gate{{Name: "VPC endpoint policy", Policies: []*policy.Policy{j09}}}},
	} {
		b.Run(v.name, func(b *testing.B) {
			in := policy.Input{Request: req, ResourceAccount: "123456789012", Identity: []*policy.Policy{identity}, Gates: v.gates}
			b.ReportAllocs()
			for range b.N {
				if d := policy.Decide(in); !d.Allowed {
					b.Fatal(d.Reason)
				}
			}
		})
	}
}

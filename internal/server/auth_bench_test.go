package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// BenchmarkManifestHEADAuth is issue #3's cost target seen from inside one
// process: manifest HEADs by 8 clients, anonymous (the decision point
// skipped: --insecure-allow-anonymous) and with a registry token (token
// check, identity and repository policies), against the same server, in
// turns. Compare the variants' req/cpu-s medians; run with -cpuprofile on
// one variant (-bench 'ManifestHEADAuth/token') to see where the
// difference goes.
func BenchmarkManifestHEADAuth(b *testing.B) {
	cfg := endpointTestConfig(b)
	cfg.InsecureAllowAnonymous = true
	runServer(b, cfg)
	tok := loginToken(b, ecrVia("http://"+cfg.Listen, nil, staticCreds(adminID, adminSecret)))
	pushBenchImage(b, cfg.Listen, tok)
	url := "http://" + cfg.Listen + "/v2/bench/app/manifests/v1"
	variants := []struct{ name, tok string }{{"anonymous", ""}, {"token", tok}}
	for round := range headRounds {
		for i := range variants {
			v := variants[(i+round)%len(variants)]
			b.Run(v.name, func(b *testing.B) { benchHEAD(b, url, v.tok) })
		}
	}
}

// BenchmarkManifestHEADAuthHandler is BenchmarkManifestHEADAuth without
// the network: the root handler serves the same manifest HEAD, one at a
// time, anonymously and with the registry token of an IAM user holding
// AmazonEC2ContainerRegistryPowerUser, in turns. cpu-ns/op is the
// process's CPU per request (GC included; audit included, its disk waits
// not), steadier than wall time on a shared machine: the difference of
// the variants is the cost of the decision point and of the token check,
// without net/http's parsing of the longer request.
func BenchmarkManifestHEADAuthHandler(b *testing.B) {
	cfg := endpointTestConfig(b)
	cfg.InsecureAllowAnonymous = true
	srv, app := startApp(b, cfg, slog.New(slog.DiscardHandler))
	id, secret := createUser(b, app, "ci", "AmazonEC2ContainerRegistryPowerUser")
	tok := loginToken(b, ecrClient(srv, id, secret, nil))
	admin := loginToken(b, ecrClient(srv, adminID, adminSecret, nil))
	pushBenchImage(b, srv.Listener.Addr().String(), admin)
	h := app.Handler()
	variants := []struct{ name, tok string }{{"anonymous", ""}, {"token", tok}}
	for round := range headRounds {
		for i := range variants {
			v := variants[(i+round)%len(variants)]
			b.Run(v.name, func(b *testing.B) {
				req := httptest.NewRequest(http.MethodHead, "/v2/bench/app/manifests/v1", nil)
				req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
				if v.tok != "" {
					req.SetBasicAuth("AWS", v.tok)
				}
				b.ReportAllocs()
				cpu0 := processCPU()
				for b.Loop() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("HEAD: %d", w.Code)
					}
				}
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// pushBenchImage pushes a random one-layer image to host's bench/app:v1
// with a registry token.
func pushBenchImage(b *testing.B, host, tok string) {
	b.Helper()
	ref, err := name.ParseReference(host+"/bench/app:v1", name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	img, err := random.Image(1024, 1)
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "AWS", Password: tok})); err != nil {
		b.Fatal(err)
	}
}

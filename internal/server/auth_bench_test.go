package server

import (
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
	ref, _ := name.ParseReference(cfg.Listen+"/bench/app:v1", name.Insecure)
	img, _ := random.Image(1024, 1)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "AWS", Password: tok})); err != nil {
		b.Fatal(err)
	}
	url := "http://" + cfg.Listen + "/v2/bench/app/manifests/v1"
	variants := []struct{ name, tok string }{{"anonymous", ""}, {"token", tok}}
	for round := range headRounds {
		for i := range variants {
			v := variants[(i+round)%len(variants)]
			b.Run(v.name, func(b *testing.B) { benchHEAD(b, url, v.tok) })
		}
	}
}

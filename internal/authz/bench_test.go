package authz_test

import (
	"net/netip"
	"testing"
	"time"
)

// BenchmarkAuthorize is the decision of an authenticated manifest HEAD
// (issue #3's cost target): alice's identity policy, the repository's
// (cached) resource policies and tags, and the request context.
func BenchmarkAuthorize(b *testing.B) {
	f := newFixture(b, time.Hour)
	f.info.SourceIP = netip.MustParseAddr("127.0.0.1")
	f.info.UserAgent = "go-containerregistry/v0.20.3"
	ctx := b.Context()
	if err := f.authz.Authorize(ctx, f.info, "ecr:BatchGetImage", repoARN); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := f.authz.Authorize(ctx, f.info, "ecr:BatchGetImage", repoARN); err != nil {
			b.Fatal(err)
		}
	}
}

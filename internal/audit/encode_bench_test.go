package audit

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
)

// headInfo is what the pipeline knows of an authenticated manifest HEAD.
func headInfo() *auth.Info {
	return &auth.Info{
		Principal: auth.Principal{Type: "IAMUser", PrincipalID: "AIDA6LGPASJUNA63TLGF3", ARN: "arn:aws:iam::181119758900:user/admin",
			AccountID: "181119758900", AccessKeyID: "AKIAADMINEXAMPLE0001", UserName: "admin"},
		Action: "ecr:BatchGetImage", SourceIP: netip.MustParseAddr("127.0.0.1"), UserAgent: "Go-http-client/1.1",
		RequestID: "336736af82869cc57b84e9307cf124e3", Time: time.Now(),
		Resources: []string{"arn:aws:ecr:us-east-1:181119758900:repository/test/img"},
	}
}

func BenchmarkEncodeRecord(b *testing.B) {
	info := headInfo()
	b.ReportAllocs()
	for b.Loop() {
		ev := NewEvent(info, Outcome{Status: 200}, "us-east-1", "181119758900", time.Now())
		if _, err := encodeRecord(ev, "181119758900"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMetaOf is the index's share of Append: a record's lookup
// attributes, for records in a row alike (one client pulling) and not.
func BenchmarkMetaOf(b *testing.B) {
	other := headInfo()
	other.Principal.UserName, other.Resources = "ci", []string{"arn:aws:ecr:us-east-1:181119758900:repository/team/app"}
	evs := []*Event{
		NewEvent(headInfo(), Outcome{Status: 200}, "us-east-1", "181119758900", time.Now()),
		NewEvent(other, Outcome{Status: 200}, "us-east-1", "181119758900", time.Now()),
	}
	for _, c := range []struct {
		name string
		evs  []*Event
	}{{"alike", evs[:1]}, {"alternating", evs}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				metaOf(c.evs[i%len(c.evs)])
				i++
			}
		})
	}
}

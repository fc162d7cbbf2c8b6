package audit

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cofferhq/coffer/internal/auth"
)

// sampleEvents are records of every shape NewEvent makes: anonymous, an
// IAM user, an assumed role (session context), a service event with
// details, an error, TLS details, several resources, parameters.
func sampleEvents() []*Event {
	now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	anon := NewEvent(&auth.Info{Action: "ecr:BatchGetImage", SourceIP: netip.MustParseAddr("::1")}, Outcome{Status: 401}, testRegion, testAccount, now)
	user := NewEvent(headInfo(), Outcome{Status: 200}, testRegion, testAccount, now)
	role := headInfo()
	role.Principal = auth.Principal{Type: "AssumedRole", PrincipalID: "AROAEXAMPLE:ci", ARN: "arn:aws:sts::111122223333:assumed-role/ci/run-1",
		AccountID: testAccount, AccessKeyID: "ASIAEXAMPLE", RoleARN: "arn:aws:iam::111122223333:role/ci"}
	role.SecureTransport, role.TLSVersion, role.TLSCipherSuite, role.Host = true, "TLSv1.3", "TLS_AES_128_GCM_SHA256", "registry.example:5000"
	role.Params = map[string]any{"repositoryName": "team/<app>&", "imageIds": []any{map[string]any{"imageTag": "v1\u2028"}}, "n": 3}
	role.Resources = append(role.Resources, "arn:aws:kms:us-east-1:111122223333:key/1234")
	svc := &auth.Info{Principal: auth.Principal{Type: "AWSService", PrincipalID: "ecr.amazonaws.com", AccountID: testAccount},
		Action: "ecr:PolicyExecutionEvent", EventName: "PolicyExecutionEvent", EventType: "AwsServiceEvent", InvokedBy: "ecr.amazonaws.com",
		ServiceEventDetails: map[string]any{"actionType": "EXPIRE", "imageTags": []string{"a", "b"}}}
	failed := headInfo()
	failed.ErrorCode, failed.ErrorMessage = "AccessDenied", "User: \"x\" is not authorized\n\t\x01 \xff"
	var out []*Event
	for _, in := range []*auth.Info{role, svc, failed} {
		out = append(out, NewEvent(in, Outcome{Status: 200}, testRegion, testAccount, now))
	}
	empty := &Event{UserIdentity: UserIdentity{SessionContext: &SessionContext{}}, TLSDetails: &TLSDetails{}}
	return append([]*Event{anon, user, empty}, out...)
}

func TestAppendEventMatchesEncodingJSON(t *testing.T) {
	for i, ev := range sampleEvents() {
		if got, want := bothEncodings(t, ev); !bytes.Equal(got, want) {
			t.Errorf("event %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// bothEncodings returns ev as appendEvent and as encoding/json write it.
func bothEncodings(t *testing.T, ev *Event) (got, want []byte) {
	t.Helper()
	want, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if got, err = appendEvent(nil, ev); err != nil {
		t.Fatal(err)
	}
	return got, want
}

// FuzzAppendEvent holds appendEvent byte for byte equal to json.Marshal
// for any strings in any member.
func FuzzAppendEvent(f *testing.F) {
	f.Add("ecr:PutImage", "team/app", "\"<&>\u2028\x00\xff", "AKIA", true, false)
	f.Fuzz(func(t *testing.T, action, user, weird, key string, tls, role bool) {
		ev := &Event{EventVersion: weird, EventTime: user, EventSource: action, EventName: weird, AWSRegion: key,
			SourceIPAddress: weird, UserAgent: weird, ErrorCode: user, ErrorMessage: weird, RequestID: key,
			EventID: action, ReadOnly: tls, EventType: weird, ManagementEvent: role, RecipientAccountID: key,
			VPCEndpointID: user, EventCategory: weird,
			UserIdentity:      UserIdentity{Type: weird, PrincipalID: user, ARN: action, AccountID: key, AccessKeyID: weird, UserName: user, InvokedBy: weird},
			Resources:         []Resource{{ARN: weird, AccountID: user, Type: key}, {ARN: action}},
			RequestParameters: map[string]any{weird: user},
		}
		if role {
			ev.UserIdentity.SessionContext = &SessionContext{SessionIssuer: &SessionIssuer{Type: weird, PrincipalID: user, ARN: action, AccountID: key, UserName: weird}}
			ev.ServiceEventDetails = map[string]any{"x": weird}
		}
		if tls {
			ev.TLSDetails = &TLSDetails{TLSVersion: weird, ClientProvidedHostHeader: user}
		}
		if got, want := bothEncodings(t, ev); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

// TestPlainWord: a word is plain exactly when each of its bytes is, for
// every byte at every place, beside plain bytes and beside the
// borderline ones.
func TestPlainWord(t *testing.T) {
	for _, fill := range []byte{'a', 0x7f, 0x20, '!', '%', '=', '?', '[', ']'} {
		for c := range 256 {
			for i := range 8 {
				w := bytes.Repeat([]byte{fill}, 8)
				w[i] = byte(c)
				want := c < utf8.RuneSelf && plain[c] && plain[fill]
				if got := plainWord(word(string(w))); got != want {
					t.Fatalf("plainWord(%q) = %v, want %v", w, got, want)
				}
			}
		}
	}
}

package sigv4

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	c := newCapturer(t)
	header := signAndSend(t, c, signOpts{service: "sts", body: []byte("Action=GetCallerIdentity&Version=2011-06-15"),
		header: map[string]string{"Content-Type": formType}})
	presign60 := signAndSend(t, c, signOpts{service: "s3", method: "GET", path: "/b/k", payload: unsignedPayload, presign: true, expires: 60})
	presignNoExp := signAndSend(t, c, signOpts{service: "sts", method: "GET", path: "/?Action=GetCallerIdentity&Version=2011-06-15", presign: true})
	temp := signAndSend(t, c, signOpts{service: "ecr", body: []byte(`{}`), creds: temporary(), at: signTime.Add(time.Hour - time.Minute),
		header: map[string]string{"Content-Type": jsonType, "X-Amz-Target": ecrTarget}})

	for _, tc := range []struct {
		name    string
		req     captured
		service string
		now     time.Time
		skew    time.Duration
		want    error
		msg     string
	}{
		{"header at signing", header, "sts", signTime, 0, nil, ""},
		{"header skew edge past", header, "sts", signTime.Add(5 * time.Minute), 0, nil, ""},
		{"header skew past", header, "sts", signTime.Add(5*time.Minute + time.Second), 0, ErrRequestExpired,
			"Signature expired: 20240501T120000Z is now earlier than 20240501T120001Z (20240501T120501Z - 5 min.)"},
		{"header skew edge future", header, "sts", signTime.Add(-5 * time.Minute), 0, nil, ""},
		{"header skew future", header, "sts", signTime.Add(-5*time.Minute - time.Second), 0, ErrRequestExpired,
			"Signature not yet current: 20240501T120000Z is still later than 20240501T115959Z (20240501T115459Z + 5 min.)"},
		{"header custom skew", header, "sts", signTime.Add(14 * time.Minute), 15 * time.Minute, nil, ""},
		{"header custom skew past", header, "sts", signTime.Add(16 * time.Minute), 15 * time.Minute, ErrRequestExpired,
			"Signature expired: 20240501T120000Z is now earlier than 20240501T120100Z (20240501T121600Z - 15 min.)"},
		{"header odd skew", header, "sts", signTime.Add(91 * time.Second), 90 * time.Second, ErrRequestExpired,
			"Signature expired: 20240501T120000Z is now earlier than 20240501T120001Z (20240501T120131Z - 90 sec.)"},
		{"presign within", presign60, "s3", signTime.Add(60 * time.Second), 0, nil, ""},
		{"presign expired", presign60, "s3", signTime.Add(61 * time.Second), 0, ErrRequestExpired, "Request has expired"},
		{"presign much later", presign60, "s3", signTime.AddDate(1, 0, 0), 0, ErrRequestExpired, "Request has expired"},
		{"presign future within skew", presign60, "s3", signTime.Add(-5 * time.Minute), 0, nil, ""},
		{"presign future", presign60, "s3", signTime.Add(-5*time.Minute - time.Second), 0, ErrRequestExpired, "Request is not valid yet"},
		{"presign without expires inside skew", presignNoExp, "sts", signTime.Add(5 * time.Minute), 0, nil, ""},
		{"presign without expires outside skew", presignNoExp, "sts", signTime.Add(5*time.Minute + time.Second), 0, ErrRequestExpired, "Signature expired"},
		{"temporary before expiry", temp, "ecr", signTime.Add(time.Hour - time.Second), 0, nil, ""},
		{"temporary at expiry", temp, "ecr", signTime.Add(time.Hour), 0, ErrExpiredToken, msgExpiredToken},
		{"temporary after expiry", temp, "ecr", signTime.Add(time.Hour + 4*time.Minute), 0, ErrExpiredToken, msgExpiredToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, func(c *Config) {
				c.Now = func() time.Time { return tc.now }
				c.MaxSkew = tc.skew
			})
			r := tc.req.fresh()
			_, err := v.Verify(r, tc.service)
			wantErr(t, err, tc.want, r)
			if err != nil {
				var e *Error
				errors.As(err, &e)
				if !strings.HasPrefix(e.Message, tc.msg) {
					t.Fatalf("message %q, want prefix %q", e.Message, tc.msg)
				}
			}
		})
	}
}

// TestNowInOtherZone: the clock's location does not matter.
func TestNowInOtherZone(t *testing.T) {
	c := newCapturer(t)
	got := signAndSend(t, c, signOpts{service: "ecr", body: []byte(`{}`)})
	zone := time.FixedZone("UTC+14", 14*3600)
	v := newVerifier(t, func(c *Config) { c.Now = func() time.Time { return signTime.In(zone) } })
	if _, err := v.Verify(got.fresh(), "ecr"); err != nil {
		t.Fatal(err)
	}
}

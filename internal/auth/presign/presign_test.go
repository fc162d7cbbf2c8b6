package presign

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

var (
	testKey, _  = NewKey(bytes.Repeat([]byte{7}, 32))
	otherKey, _ = NewKey(bytes.Repeat([]byte{8}, 32))
	now         = time.Unix(1_800_000_000, 0)
	digest      = "sha256:" + strings.Repeat("ab", 32)
	claims      = Claims{Repository: "team/app", Digest: digest, Expires: now.Add(Lifetime),
		Principal: Principal{Type: "IAMUser", ARN: "arn:aws:iam::123456789012:user/ci", AccountID: "123456789012",
			PrincipalID: "AIDAEXAMPLE", UserName: "ci"}}
)

func sign(t *testing.T) url.Values {
	t.Helper()
	q, err := testKey.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	q := sign(t)
	c, err := testKey.Verify("team/app", digest, q, now)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.Principal != claims.Principal || !c.Expires.Equal(claims.Expires) || c.Repository != "team/app" || c.Digest != digest {
		t.Fatalf("claims = %+v, want %+v", c, claims)
	}
	// Through a real URL's encoding and back.
	u, _ := url.Parse("http://h/_coffer/layers/team/app/" + digest + "?" + q.Encode())
	if _, err := testKey.Verify("team/app", digest, u.Query(), now); err != nil {
		t.Fatalf("Verify after URL round trip: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	mutate := func(f func(q url.Values)) url.Values {
		q := sign(t)
		f(q)
		return q
	}
	other := "sha256:" + strings.Repeat("cd", 32)
	for _, tc := range []struct {
		name         string
		key          *Key
		repo, digest string
		q            url.Values
		at           time.Time
		want         error
	}{
		{"another repository", testKey, "team/other", digest, sign(t), now, ErrSignature},
		{"another digest", testKey, "team/app", other, sign(t), now, ErrSignature},
		{"another key", otherKey, "team/app", digest, sign(t), now, ErrSignature},
		{"later expiry", testKey, "team/app", digest, mutate(func(q url.Values) {
			q.Set(ParamExpires, "1900000000")
		}), now, ErrSignature},
		{"another principal", testKey, "team/app", digest, mutate(func(q url.Values) {
			q.Set(ParamPrincipal, "eyJhcm4iOiJhcm46YXdzOmlhbTo6MTIzNDU2Nzg5MDEyOnJvb3QifQ")
		}), now, ErrSignature},
		{"flipped signature", testKey, "team/app", digest, mutate(func(q url.Values) {
			s := []byte(q.Get(ParamSignature))
			s[0] ^= 1
			q.Set(ParamSignature, string(s))
		}), now, ErrSignature},
		{"no signature", testKey, "team/app", digest, mutate(func(q url.Values) { q.Del(ParamSignature) }), now, ErrMalformed},
		{"two signatures", testKey, "team/app", digest, mutate(func(q url.Values) { q.Add(ParamSignature, q.Get(ParamSignature)) }), now, ErrMalformed},
		{"short signature", testKey, "team/app", digest, mutate(func(q url.Values) { q.Set(ParamSignature, "abcd") }), now, ErrMalformed},
		{"huge principal", testKey, "team/app", digest, mutate(func(q url.Values) { q.Set(ParamPrincipal, strings.Repeat("A", 5000)) }), now, ErrMalformed},
		{"at expiry", testKey, "team/app", digest, sign(t), now.Add(Lifetime), ErrExpired},
		{"after expiry", testKey, "team/app", digest, sign(t), now.Add(time.Hour), ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.key.Verify(tc.repo, tc.digest, tc.q, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if sig := tc.q.Get(ParamSignature); sig != "" && err != nil && strings.Contains(err.Error(), sig) {
				t.Fatalf("error echoes the signature: %v", err)
			}
		})
	}
}

func TestKeyHygiene(t *testing.T) {
	t.Parallel()
	if _, err := NewKey(make([]byte, 16)); err == nil {
		t.Fatal("16-byte key accepted")
	}
	if s := testKey.String(); strings.Contains(s, "07") || !strings.Contains(s, "REDACTED") {
		t.Fatalf("String() = %q", s)
	}
	if _, err := testKey.Sign(Claims{Repository: "r", Digest: digest}); err == nil {
		t.Fatal("signed without a principal")
	}
}

func FuzzVerify(f *testing.F) {
	q, _ := testKey.Sign(claims)
	f.Add("team/app", digest, q.Encode())
	f.Add("", "", "X-Coffer-Expires=1&X-Coffer-Principal=&X-Coffer-Signature=00")
	f.Fuzz(func(t *testing.T, repo, d, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		c, err := testKey.Verify(repo, d, q, now)
		if err == nil {
			// Only what this key signed verifies.
			if repo != "team/app" || d != digest || c.Principal != claims.Principal {
				t.Fatalf("verified unsigned claims %+v", c)
			}
		}
	})
}

package token

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func testKey(t testing.TB, b byte) *Key {
	k, err := NewKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func claims(now time.Time) Claims {
	return Claims{Type: "IAMUser", ARN: "arn:aws:iam::111122223333:user/alice", AccountID: "111122223333",
		PrincipalID: "AIDAEXAMPLE", UserName: "alice", IssuedAt: now.Unix(), ExpiresAt: now.Add(Lifetime).Unix()}
}

func TestIssueVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	k := testKey(t, 1)
	tok, err := k.Issue(claims(now))
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.Verify(tok, now.Add(time.Hour))
	if err != nil || got != claims(now) {
		t.Fatalf("Verify = %+v, %v", got, err)
	}

	for _, tc := range []struct {
		name string
		tok  string
		at   time.Time
		key  *Key
		want error
	}{
		{"expired", tok, now.Add(Lifetime), k, ErrExpired},
		{"other key", tok, now, testKey(t, 2), ErrSignature},
		{"empty", "", now, k, ErrMalformed},
		{"no prefix", strings.TrimPrefix(tok, "cf1."), now, k, ErrMalformed},
		{"truncated signature", tok[:len(tok)-2], now, k, ErrMalformed},
		{"huge", "cf1." + strings.Repeat("a", 9000), now, k, ErrMalformed},
		{"altered payload", alter(tok), now, k, ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.key.Verify(tc.tok, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if tc.tok != "" && strings.Contains(err.Error(), tc.tok) {
				t.Fatal("error echoes the token")
			}
		})
	}
}

// alter replaces the payload with one claiming another principal, keeping
// the original signature.
func alter(tok string) string {
	parts := strings.Split(tok, ".")
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	p = bytes.Replace(p, []byte("alice"), []byte("admin"), -1)
	parts[1] = base64.RawURLEncoding.EncodeToString(p)
	return strings.Join(parts, ".")
}

func TestIssueRefusesLongLifetime(t *testing.T) {
	t.Parallel()
	c := claims(time.Unix(0, 0))
	c.ExpiresAt = c.IssuedAt + int64((Lifetime+time.Second)/time.Second)
	if _, err := testKey(t, 1).Issue(c); err == nil {
		t.Fatal("issued a token living longer than 12 hours")
	}
}

func TestKeyNeverFormats(t *testing.T) {
	t.Parallel()
	k := testKey(t, 0x41)
	if s := k.String(); strings.Contains(s, "AAAA") {
		t.Fatalf("String() = %q", s)
	}
}

func FuzzVerify(f *testing.F) {
	k := testKey(f, 1)
	now := time.Unix(1_700_000_000, 0)
	tok, _ := k.Issue(claims(now))
	f.Add(tok)
	f.Add("cf1..")
	f.Add("cf1.e30.AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := k.Verify(s, now)
		if err == nil && s != tok {
			// Only tokens signed by k verify: re-issuing c must give s.
			again, ierr := k.Issue(c)
			if ierr != nil || again != s {
				t.Fatalf("verified a token k did not issue: %q", s)
			}
		}
	})
}

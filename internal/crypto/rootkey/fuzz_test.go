package rootkey

import (
	"bytes"
	"testing"
)

// FuzzRootKeyUnwrap feeds arbitrary wrapped values and contexts to Unwrap.
// It must never panic, must fail with exactly ErrUnwrap, and may succeed only
// on a value that re-seals, with its own nonce, to the same bytes: that is,
// only on a genuine Wrap output for this key and context.
func FuzzRootKeyUnwrap(f *testing.F) {
	k := testKey(f)
	for _, pt := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{1}, 32)} {
		w, err := k.Wrap(pt, map[string]string{"aws:ecr:arn": "arn:aws:ecr:us-west-2:111122223333:repository/r"})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(w, "aws:ecr:arn", "arn:aws:ecr:us-west-2:111122223333:repository/r")
		f.Add(w, "aws:ecr:arn", "arn:aws:ecr:us-west-2:111122223333:repository/s")
	}
	f.Add([]byte{1}, "", "")
	f.Fuzz(func(t *testing.T, wrapped []byte, ck, cv string) {
		ec := map[string]string{ck: cv}
		pt, err := k.Unwrap(wrapped, ec)
		if err != nil {
			if err != ErrUnwrap {
				t.Fatalf("error %v is not ErrUnwrap itself", err)
			}
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			return
		}
		if !bytes.Equal(sealWithNonce(t, k, wrapped[1:13], pt, ec), wrapped) {
			t.Fatal("Unwrap accepted a value that Wrap did not produce")
		}
	})
}

// FuzzParse feeds arbitrary key-file text to Parse: no panics, only
// ErrMalformed, and an accepted key re-encodes to text that parses to it.
func FuzzParse(f *testing.F) {
	good, err := testKey(f).MarshalFile()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("coffer-root-key-v1\n"))
	f.Add([]byte("coffer-root-key-v1\r\n AAAA \n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		k, err := Parse(text)
		if err != nil {
			if k != nil {
				t.Fatal("key returned with an error")
			}
			return
		}
		again, err := k.MarshalFile()
		if err != nil {
			t.Fatal(err)
		}
		k2, err := Parse(again)
		if err != nil || !k2.Matches(k.CheckValue()) {
			t.Fatalf("re-encoded key does not round trip: %v", err)
		}
	})
}

package envelope

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// checkRejected asserts that decrypting a bad object fails with one of the
// package's sentinels and that what was released before the error is a
// prefix of the true plaintext no longer than maxGood bytes (the plaintext
// of the segments before the damage).
func checkRejected(t *testing.T, got []byte, err error, pt []byte, maxGood int) {
	t.Helper()
	if err == nil {
		t.Fatal("bad object decrypted without error")
	}
	if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrAuth) && !errors.Is(err, ErrTruncated) {
		t.Fatalf("error %v is not ErrFormat, ErrAuth or ErrTruncated", err)
	}
	if !bytes.HasPrefix(pt, got) {
		t.Fatal("released bytes that are not a prefix of the plaintext")
	}
	if len(got) > maxGood {
		t.Fatalf("released %d bytes, at most %d precede the damage", len(got), maxGood)
	}
}

// TestFlipEveryByte flips bits in every byte of small objects, header and
// body, and checks that each flip is caught before the damaged segment's
// plaintext is released.
func TestFlipEveryByte(t *testing.T) {
	t.Parallel()
	const S = 4096
	for _, nslots := range []int{1, 2} {
		for _, L := range []int{0, 2*S + 100} {
			t.Run(fmt.Sprintf("slots=%d/len=%d", nslots, L), func(t *testing.T) {
				t.Parallel()
				h := mustHeader(t, 12, nslots)
				keys := testKeys[:nslots]
				pt := pattern(L)
				obj := encrypt(t, h, testIdentity, pt, keys)
				hl := int(h.Len())
				cs := S + 16*nslots
				bad := bytes.Clone(obj)
				for i := range obj {
					for _, mask := range []byte{0x01, 0x80, 0xff} {
						bad[i] ^= mask
						got, err := decrypt(bad, testIdentity, int64(L), keys)
						maxGood := 0
						if i >= hl {
							maxGood = (i - hl) / cs * S
						}
						checkRejected(t, got, err, pt, maxGood)
						bad[i] ^= mask
					}
				}
			})
		}
	}
}

func TestTamper(t *testing.T) {
	t.Parallel()
	const S = 4096
	const L = 3*S + 7
	for _, nslots := range []int{1, 2} {
		h := mustHeader(t, 12, nslots)
		keys := testKeys[:nslots]
		pt := pattern(L)
		obj := encrypt(t, h, testIdentity, pt, keys)
		hl := int(h.Len())
		cs := S + 16*nslots
		seg := func(i int) []byte { return obj[hl+i*cs : min(hl+(i+1)*cs, len(obj))] }
		join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

		otherID := []byte("arn:aws:s3:::us-west-2-starport-layer-bucket/layers/aes256/other-object")
		other := encrypt(t, h, otherID, pt, keys)
		otherSeg := func(i int) []byte { return other[hl+i*cs : hl+(i+1)*cs] }
		otherHeader := mustHeader(t, 12, nslots)
		otherHeader.raw[len(otherHeader.raw)-1] ^= 1 // a different wrapped key

		swapped := keys
		if nslots == 2 {
			swapped = [][]byte{keys[1], keys[0]}
		}
		tests := []struct {
			name     string
			obj      []byte
			identity []byte
			size     int64
			keys     [][]byte
			maxGood  int
		}{
			{"drop last segment", join(obj[:hl], seg(0), seg(1), seg(2)), testIdentity, L, keys, 3 * S},
			{"drop last segment, size adjusted", join(obj[:hl], seg(0), seg(1), seg(2)), testIdentity, 3 * S, keys, 2 * S},
			{"drop middle segment", join(obj[:hl], seg(0), seg(2), seg(3)), testIdentity, L, keys, S},
			{"drop middle segment, size adjusted", join(obj[:hl], seg(0), seg(2), seg(3)), testIdentity, 2*S + 7, keys, S},
			{"truncate mid-segment", obj[:len(obj)-5], testIdentity, L, keys, 3 * S},
			{"truncate to header", obj[:hl], testIdentity, L, keys, 0},
			{"truncate header", obj[:hl-1], testIdentity, L, keys, 0},
			{"swap segments 0 and 1", join(obj[:hl], seg(1), seg(0), seg(2), seg(3)), testIdentity, L, keys, 0},
			{"swap segments 1 and 2", join(obj[:hl], seg(0), seg(2), seg(1), seg(3)), testIdentity, L, keys, S},
			{"duplicate segment", join(obj[:hl], seg(0), seg(0), seg(2), seg(3)), testIdentity, L, keys, S},
			{"splice from other identity", join(obj[:hl], seg(0), otherSeg(1), seg(2), seg(3)), testIdentity, L, keys, S},
			{"other object's header", join(otherHeader.raw, obj[hl:]), testIdentity, L, keys, 0},
			{"changed identity", obj, otherID, L, keys, 0},
			{"identity prefix", obj, testIdentity[:len(testIdentity)-1], L, keys, 0},
			{"extra trailing byte", join(obj, []byte{0}), testIdentity, L, keys, 3 * S},
			{"extra trailing segment", join(obj, seg(0)), testIdentity, L, keys, 3 * S},
			{"size one short", obj, testIdentity, L - 1, keys, 3 * S},
			{"size one long", obj, testIdentity, L + 1, keys, 3 * S},
			{"size a segment short", obj, testIdentity, L - S, keys, 2 * S},
			{"size zero", obj, testIdentity, 0, keys, 0},
			{"wrong keys", obj, testIdentity, L, [][]byte{seqBytes(1, 32), seqBytes(0x21, 32)}[:nslots], 0},
		}
		if nslots == 2 {
			tests = append(tests, struct {
				name     string
				obj      []byte
				identity []byte
				size     int64
				keys     [][]byte
				maxGood  int
			}{"keys swapped", obj, testIdentity, L, swapped, 0})
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("slots=%d/%s", nslots, tt.name), func(t *testing.T) {
				t.Parallel()
				got, err := decrypt(tt.obj, tt.identity, tt.size, tt.keys)
				checkRejected(t, got, err, pt, tt.maxGood)
			})
		}
	}
}

// TestSameKeysSameIdentitySplice documents the boundary of the guarantee:
// segments are bound to (data keys, header, identity, index), so splicing
// between two objects is only possible if both share all of those, which
// fresh per-object data keys rule out.
func TestSameKeysSameIdentitySplice(t *testing.T) {
	t.Parallel()
	h := mustHeader(t, 12, 1)
	a := encrypt(t, h, testIdentity, bytes.Repeat([]byte{'a'}, 2*4096), testKeys[:1])
	b := encrypt(t, h, testIdentity, bytes.Repeat([]byte{'b'}, 2*4096), testKeys[:1])
	hl, cs := int(h.Len()), 4096+16
	spliced := bytes.Join([][]byte{a[:hl+cs], b[hl+cs:]}, nil)
	got, err := decrypt(spliced, testIdentity, 2*4096, testKeys[:1])
	if err != nil || got[0] != 'a' || got[len(got)-1] != 'b' {
		t.Fatalf("expected the (documented) splice to open: %v", err)
	}
}

package envelope

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the known-answer vectors in testdata/kat")

// katVector is one frozen known-answer vector. Inputs live here; the
// expected object lives in testdata/kat/<name>.hex, together with a
// description of the inputs, so the file alone suffices to re-derive it.
type katVector struct {
	name    string
	shift   uint8
	nslots  int
	pt      []byte
	ptDescr string
}

func katVectors() []katVector {
	hello := []byte("Hello, Coffer!")
	return []katVector{
		{"v1-1slot-empty", 16, 1, nil, `""`},
		{"v1-1slot-hello", 16, 1, hello, `"Hello, Coffer!"`},
		{"v1-2slot-hello", 16, 2, hello, `"Hello, Coffer!"`},
		{"v1-1slot-3seg", 12, 1, pattern(2*4096 + 5), "byte i = (7*i + 3) mod 251"},
		{"v1-2slot-fullseg", 12, 2, pattern(4096), "byte i = (7*i + 3) mod 251"},
		{"v1-2slot-3seg", 12, 2, pattern(2*4096 + 5), "byte i = (7*i + 3) mod 251"},
	}
}

// render produces the vector file for v from the current code.
func (v katVector) render(t *testing.T) string {
	h := mustHeader(t, v.shift, v.nslots)
	obj := encrypt(t, h, testIdentity, v.pt, testKeys[:v.nslots])
	var b strings.Builder
	fmt.Fprintf(&b, "# Coffer envelope format v1, known-answer vector %s (docs/envelope.md).\n", v.name)
	fmt.Fprintf(&b, "# Regenerate only for a new format version: go test -run TestKnownAnswers -update\n")
	fmt.Fprintf(&b, "# seg_shift: %d\n", v.shift)
	for j := range v.nslots {
		s := testSlots[j]
		fmt.Fprintf(&b, "# slot %d: source=%d key_id=%q wrapped=%x\n", j, s.Source, s.KeyID, s.Wrapped)
		fmt.Fprintf(&b, "# data key %d: %x\n", j, testKeys[j])
	}
	fmt.Fprintf(&b, "# identity: %q\n", testIdentity)
	fmt.Fprintf(&b, "# plaintext: %d bytes, %s, sha256 %x\n", len(v.pt), v.ptDescr, sha256.Sum256(v.pt))
	fmt.Fprintf(&b, "# header: %d bytes\n", h.Len())
	fmt.Fprintf(&b, "# object: %d bytes, sha256 %x\n", len(obj), sha256.Sum256(obj))
	x := hex.EncodeToString(obj)
	for len(x) > 0 {
		n := min(64, len(x))
		b.WriteString(x[:n] + "\n")
		x = x[n:]
	}
	return b.String()
}

// parseVectorFile returns the object bytes of a vector file.
func parseVectorFile(t *testing.T, text string) []byte {
	var x strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			x.WriteString(line)
		}
	}
	obj, err := hex.DecodeString(x.String())
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// TestKnownAnswers checks that the current code reproduces every frozen
// vector byte for byte, that the reference transcription of the spec agrees,
// and that the frozen bytes decrypt (so the reader is tested against bytes
// the writer did not just produce).
func TestKnownAnswers(t *testing.T) {
	for _, v := range katVectors() {
		t.Run(v.name, func(t *testing.T) {
			path := filepath.Join("testdata", "kat", v.name+".hex")
			got := v.render(t)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Fatalf("encoding of %s changed; the format is frozen (diff %s against the output of render)", path, path)
			}
			obj := parseVectorFile(t, string(want))
			keys := testKeys[:v.nslots]
			if ref := referenceSeal(t, v.shift, testSlots[:v.nslots], testIdentity, v.pt, keys); !bytes.Equal(ref, obj) {
				t.Fatal("reference encoding differs from the frozen vector")
			}
			pt, err := decrypt(obj, testIdentity, int64(len(v.pt)), keys)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pt, v.pt) {
				t.Fatal("frozen vector decrypts to the wrong plaintext")
			}
		})
	}
}

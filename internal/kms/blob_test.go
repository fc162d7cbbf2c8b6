package kms

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/metadata"
)

var update = flag.Bool("update", false, "rewrite the known-answer vectors in testdata/kat")

// katVector is a frozen ciphertext blob with everything needed to derive
// it: the format must keep decrypting these forever.
type katVector struct {
	Comment           string            `json:"comment"`
	KeyID             string            `json:"keyId"`
	Version           uint32            `json:"materialVersion"`
	Material          string            `json:"material"` // hex
	Nonce             string            `json:"nonce"`    // hex
	Plaintext         string            `json:"plaintext"`
	EncryptionContext map[string]string `json:"encryptionContext"`
	Blob              string            `json:"blob"` // hex
}

func katInputs() map[string]katVector {
	mat := make([]byte, 32)
	for i := range mat {
		mat[i] = byte(i)
	}
	nonce := hex.EncodeToString([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	return map[string]katVector{
		"v1-no-context": {KeyID: "1234abcd-12ab-44cd-86ef-1234567890ab", Version: 1, Material: hex.EncodeToString(mat),
			Nonce: nonce, Plaintext: "Hello, Coffer KMS!"},
		"v1-ecr-context": {KeyID: "b8d9ae76-080c-4043-9237-c815bfc21dfc", Version: 3, Material: hex.EncodeToString(mat),
			Nonce: nonce, Plaintext: "0123456789abcdef0123456789abcdef",
			// SPEC J-05, verbatim.
			EncryptionContext: map[string]string{
				"aws:s3:arn":  "arn:aws:s3:::us-west-2-starport-manifest-bucket/EXAMPLE1-90ab-cdef-fedc-ba987BUCKET1/sha256:a7766145a775d39e53a713c75b6fd6d318740e70327aaa3ed5d09e0ef33fc3df",
				"aws:ecr:arn": "arn:aws:ecr:us-west-2:111122223333:repository/repository-name",
			}},
	}
}

func (v katVector) material(t *testing.T) *material {
	raw, err := hex.DecodeString(v.Material)
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMaterial(v.Version, "", raw)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestKnownAnswers freezes the ciphertext blob format v1: sealing the
// inputs gives the stored bytes, and the stored bytes open.
func TestKnownAnswers(t *testing.T) {
	t.Parallel()
	for name, in := range katInputs() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			nonce, _ := hex.DecodeString(in.Nonce)
			got := in.material(t).seal(KeyID(in.KeyID), nonce, []byte(in.Plaintext), in.EncryptionContext)
			path := filepath.Join("testdata", "kat", name+".json")
			if *update {
				in.Comment = "Coffer KMS ciphertext blob v1 (docs/kms.md). Regenerate only for a new format version: go test -run TestKnownAnswers -update"
				in.Blob = hex.EncodeToString(got)
				b, _ := json.MarshalIndent(in, "", "  ")
				if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update once to create it)", err)
			}
			var want katVector
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got) != want.Blob {
				t.Fatalf("blob changed:\n got %x\nwant %s", got, want.Blob)
			}
			frozen, _ := hex.DecodeString(want.Blob)
			b, err := parseBlob(frozen)
			if err != nil || b.keyID != KeyID(want.KeyID) || b.version != want.Version {
				t.Fatalf("parseBlob = %+v, %v", b, err)
			}
			pt, err := want.material(t).open(b, want.EncryptionContext)
			if err != nil || string(pt) != want.Plaintext {
				t.Fatalf("open = %q, %v", pt, err)
			}
		})
	}
}

// TestKnownAnswersIndependent checks the vectors with an independent
// implementation (Python's cryptography package), from the format
// description alone.
func TestKnownAnswersIndependent(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is required: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "kat", "*.json"))
	if len(files) == 0 {
		t.Fatal("no vectors")
	}
	out, err := exec.CommandContext(t.Context(), py, append([]string{filepath.Join("testdata", "kat", "verify.py")}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("verify.py: %v\n%s", err, out)
	}
}

// TestKnownAnswerThroughService decrypts a frozen vector through the whole
// service: a key whose version-3 material is the vector's, stored sealed
// under the root key as CreateKey would.
func TestKnownAnswerThroughService(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	v := katInputs()["v1-ecr-context"]
	data, err := os.ReadFile(filepath.Join("testdata", "kat", "v1-ecr-context.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	raw, _ := hex.DecodeString(v.Material)
	id := KeyID(v.KeyID)
	now := time.Now().UTC()
	err = e.store.UpdateDocs(t.Context(), func(tx metadata.DocTx) error {
		if err := putDoc(tx, kindKey, string(id), keyRecord{ID: id, Created: now, State: stateEnabled, Manager: managerCustomer,
			Policy: e.svc.defaultKeyPolicy(), Current: 3}, 0); err != nil {
			return err
		}
		for ver := uint32(1); ver <= 3; ver++ {
			m, err := e.svc.newMaterialRecord(id, ver, "", now)
			if err != nil {
				return err
			}
			if ver == 3 {
				if m.Sealed, err = e.svc.cfg.Root.Wrap(raw, materialContext(id, ver)); err != nil {
					return err
				}
			}
			if err := putDoc(tx, kindMaterial, materialKey(id, ver), m, 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := hex.DecodeString(v.Blob)
	out, err := e.svc.Decrypt(t.Context(), e.admin().caller(), &DecryptInput{CiphertextBlob: blob, EncryptionContext: v.EncryptionContext})
	if err != nil || string(out.Plaintext) != v.Plaintext {
		t.Fatalf("Decrypt(frozen) = %+v, %v", out, err)
	}
	// The same bytes with material version 2 (another material) fail.
	blob[2+keyIDLen+3] = 2
	_, err = e.svc.Decrypt(t.Context(), e.admin().caller(), &DecryptInput{CiphertextBlob: blob, EncryptionContext: v.EncryptionContext})
	wantCode(t, err, "InvalidCiphertextException")
}

func TestParseBlob(t *testing.T) {
	t.Parallel()
	m, _ := newMaterial(1, "", bytes.Repeat([]byte{7}, 32))
	good := m.seal("1234abcd-12ab-44cd-86ef-1234567890ab", make([]byte, 12), []byte("x"), nil)
	if len(good) != blobOverhead+1 {
		t.Fatalf("blob is %d bytes, want %d", len(good), blobOverhead+1)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"empty":        nil,
		"short":        good[:blobOverhead-1],
		"version":      mut(func(b []byte) []byte { b[0] = 2; return b }),
		"id length":    mut(func(b []byte) []byte { b[1] = 35; return b }),
		"id charset":   mut(func(b []byte) []byte { b[2] = 'G'; return b }),
		"version 0":    mut(func(b []byte) []byte { copy(b[2+keyIDLen:], []byte{0, 0, 0, 0}); return b }),
		"too long":     append(bytes.Clone(good), make([]byte, maxBlob)...),
		"uppercase id": mut(func(b []byte) []byte { b[3] = 'A'; return b }),
	} {
		if _, err := parseBlob(b); !errors.Is(err, errBlob) {
			t.Errorf("%s: parseBlob = %v", name, err)
		}
	}
	b, err := parseBlob(good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.open(b, map[string]string{"a": "b"}); !errors.Is(err, errBlob) {
		t.Errorf("open with an extra pair = %v", err)
	}
}

// FuzzParseBlob: the parser never panics, accepts only what it would
// produce, and anything it accepts re-encodes to the same header.
func FuzzParseBlob(f *testing.F) {
	m, _ := newMaterial(1, "", bytes.Repeat([]byte{7}, 32))
	f.Add(m.seal("1234abcd-12ab-44cd-86ef-1234567890ab", make([]byte, 12), []byte("seed"), map[string]string{"k": "v"}))
	f.Add([]byte{1, 36})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseBlob(data)
		if err != nil {
			return
		}
		if !isUUID(string(b.keyID)) || b.version == 0 || len(b.nonce) != nonceSize || len(b.sealed) < tagSize {
			t.Fatalf("accepted %+v", b)
		}
		if h := appendHeader(nil, b.keyID, b.version); !bytes.Equal(h, b.header) {
			t.Fatalf("header %x re-encodes as %x", b.header, h)
		}
		if _, err := m.open(b, nil); err != nil && !errors.Is(err, errBlob) {
			t.Fatalf("open: %v", err)
		}
	})
}

// FuzzDecrypt: whatever the blob and context, Decrypt answers a client
// error, never an internal one or a panic, and every failure of the
// ciphertext is the same InvalidCiphertextException.
func FuzzDecrypt(f *testing.F) {
	e := newEnv(f, envOpts{noEvents: true})
	ctx := context.Background()
	admin := e.admin().caller()
	key, err := e.svc.CreateKey(ctx, admin, &CreateKeyInput{})
	if err != nil {
		f.Fatal(err)
	}
	good, err := e.svc.Encrypt(ctx, admin, &EncryptInput{KeyId: key.KeyMetadata.KeyId, Plaintext: []byte("seed"), EncryptionContext: map[string]string{"k": "v"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good.CiphertextBlob, "k", "v")
	f.Add(good.CiphertextBlob[:blobHeader], "k", "v")
	f.Add([]byte{}, "", "")
	f.Fuzz(func(t *testing.T, blob []byte, k, v string) {
		out, err := e.svc.Decrypt(ctx, admin, &DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{k: v}})
		if err == nil {
			if !bytes.Equal(blob, good.CiphertextBlob) || k != "k" || v != "v" || string(out.Plaintext) != "seed" {
				t.Fatalf("Decrypt accepted %x with %q=%q: %q", blob, k, v, out.Plaintext)
			}
			return
		}
		var ke *Error
		if !errors.As(err, &ke) {
			t.Fatalf("not an *Error: %v", err)
		}
		switch ke.Code {
		case codeInvalidCiphertext:
			if ke.Message != invalidCiphertextMessage {
				t.Fatalf("message %q", ke.Message)
			}
		case codeValidation:
		default:
			t.Fatalf("Decrypt(%x) = %v", blob, err)
		}
	})
}

// TestAppendCanonical: the allocation-free encoder is rootkey's
// CanonicalContext, byte for byte.
func TestAppendCanonical(t *testing.T) {
	t.Parallel()
	for _, ec := range []map[string]string{nil, {}, {"a": "b"}, {"b": "1", "a": "2", "": ""},
		{"aws:s3:arn": "x", "aws:ecr:arn": "y", "é": "ü", "A": "", "a\\x00": "z"}} {
		if got, want := appendCanonical(nil, ec), rootkey.CanonicalContext(ec); !bytes.Equal(got, want) {
			t.Errorf("%v: %x, want %x", ec, got, want)
		}
	}
	big := map[string]string{}
	for i := range 40 {
		big[fmt.Sprint(i)] = fmt.Sprint(i * i)
	}
	if !bytes.Equal(appendCanonical([]byte{9}, big), append([]byte{9}, rootkey.CanonicalContext(big)...)) {
		t.Error("large context differs")
	}
}

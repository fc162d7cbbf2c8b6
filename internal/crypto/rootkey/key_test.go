package rootkey

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

// testKeyBytes is a fixed key for known-answer tests: 0x00, 0x01, ..., 0x1f.
func testKeyBytes() []byte {
	b := make([]byte, Size)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func testKey(t testing.TB) *Key {
	t.Helper()
	k, err := fromBytes(testKeyBytes())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// secretForms returns text forms of the key that must never appear in
// output: base64, hex (both cases) and the raw bytes.
func secretForms(k *Key) []string {
	b := k.b[:]
	return []string{
		base64.StdEncoding.EncodeToString(b),
		base64.StdEncoding.EncodeToString(b)[:12],
		hex.EncodeToString(b),
		strings.ToUpper(hex.EncodeToString(b)),
		string(b),
		fmt.Sprint(b[:8]), // "[0 1 2 ..." style
		fmt.Sprintf("%d", b[0:4]),
	}
}

func assertNoSecret(t *testing.T, k *Key, out string) {
	t.Helper()
	for _, s := range secretForms(k) {
		if strings.Contains(out, s) {
			t.Fatalf("output leaks key material (%q): %q", s, out)
		}
	}
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	a, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if a.Matches(b.CheckValue()) || bytes.Equal(a.b[:], b.b[:]) {
		t.Fatal("two generated keys are equal")
	}
	if bytes.Equal(a.b[:], make([]byte, Size)) {
		t.Fatal("generated key is zero")
	}
}

func TestIncomparable(t *testing.T) {
	t.Parallel()
	if reflect.TypeFor[Key]().Comparable() {
		t.Fatal("rootkey.Key must be incomparable")
	}
}

func TestFileFormatRoundTrip(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	text, err := k.MarshalFile()
	if err != nil {
		t.Fatal(err)
	}
	want := "coffer-root-key-v1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
	if string(text) != want {
		t.Fatalf("MarshalFile = %q, want %q", text, want)
	}
	b64 := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	for name, in := range map[string]string{
		"canonical":        want,
		"no final newline": strings.TrimSuffix(want, "\n"),
		"crlf":             "coffer-root-key-v1\r\n" + b64 + "\r\n",
		"surrounding":      "\n\n  coffer-root-key-v1  \n\t" + b64 + " \n\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse([]byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if !got.Matches(k.CheckValue()) {
				t.Fatal("parsed key differs")
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	b64 := base64.StdEncoding.EncodeToString(k.b[:])
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"base64 only", b64},
		{"wrong magic", "coffer-root-key-v2\n" + b64},
		{"magic only", "coffer-root-key-v1\n"},
		{"short key", "coffer-root-key-v1\n" + base64.StdEncoding.EncodeToString(k.b[:31])},
		{"long key", "coffer-root-key-v1\n" + base64.StdEncoding.EncodeToString(append(k.b[:], 0))},
		{"extra line", "coffer-root-key-v1\n" + b64 + "\n" + b64},
		{"split key", "coffer-root-key-v1\n" + b64[:20] + "\n" + b64[20:]},
		{"inner space", "coffer-root-key-v1\n" + b64[:20] + " " + b64[21:]},
		{"url alphabet", "coffer-root-key-v1\n" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32))},
		{"no padding", "coffer-root-key-v1\n" + base64.RawStdEncoding.EncodeToString(k.b[:]) + "A"},
		{"non-canonical padding bits", "coffer-root-key-v1\n" + b64[:42] + "f="},
		{"all zero", "coffer-root-key-v1\n" + base64.StdEncoding.EncodeToString(make([]byte, 32))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tt.in))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error = %v, want ErrMalformed", err)
			}
			assertNoSecret(t, k, err.Error())
			if strings.Contains(err.Error(), b64[:8]) || strings.Contains(err.Error(), b64[20:28]) {
				t.Fatalf("error echoes input: %v", err)
			}
		})
	}
}

func TestFromBase64(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	b64 := base64.StdEncoding.EncodeToString(k.b[:])
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"plain", b64, true},
		{"whitespace", " \t" + b64 + "\n", true},
		{"empty", "", false},
		{"file form", "coffer-root-key-v1\n" + b64, false},
		{"raw encoding", base64.RawStdEncoding.EncodeToString(k.b[:]), false},
		{"short", base64.StdEncoding.EncodeToString(k.b[:16]), false},
		{"garbage", strings.Repeat("!", len(b64)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := FromBase64(tt.in)
			if !tt.ok {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error = %v, want ErrMalformed", err)
				}
				assertNoSecret(t, k, err.Error())
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Matches(k.CheckValue()) {
				t.Fatal("decoded key differs")
			}
		})
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	type holder struct {
		Exported *Key
		private  *Key
		Value    Key
	}
	h := holder{Exported: k, private: k, Value: *k}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		outputs = append(outputs, fmt.Sprintf(verb, k), fmt.Sprintf(verb, *k), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h))
	}
	outputs = append(outputs, fmt.Sprint(k), fmt.Sprintln(k, *k), k.String(), k.GoString())
	for _, v := range []any{k, *k, h} {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, string(j))
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("m", "key", k, "value", *k, "holder", h)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("m", "key", k, "value", *k, "holder", h)
	outputs = append(outputs, logs.String())
	for _, out := range outputs {
		assertNoSecret(t, k, out)
	}
	if got := fmt.Sprintf("%v|%#v|%x", k, k, k); got != "rootkey.Key(REDACTED)|rootkey.Key(REDACTED)|rootkey.Key(REDACTED)" {
		t.Fatalf("formatting = %q", got)
	}
	// Generic encoders call these; none may exist on a Key.
	for _, v := range []any{k, *k} {
		if _, ok := v.(encoding.TextMarshaler); ok {
			t.Error("Key implements encoding.TextMarshaler")
		}
		if _, ok := v.(encoding.BinaryMarshaler); ok {
			t.Error("Key implements encoding.BinaryMarshaler")
		}
		if _, ok := v.(encoding.TextAppender); ok {
			t.Error("Key implements encoding.TextAppender")
		}
	}
	if !strings.Contains(logs.String(), "REDACTED") {
		t.Fatalf("slog output lacks placeholder: %s", logs.String())
	}
}

func TestCheckValue(t *testing.T) {
	t.Parallel()
	k := testKey(t)
	// Known answer: hex(HMAC-SHA256(00..1f, "coffer root key check v1"))[:32].
	const want = "76148dc0ac6d86a5e8286aaa43956160"
	cv := k.CheckValue()
	if cv != want {
		t.Fatalf("CheckValue = %s, want %s", cv, want)
	}
	other, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		check string
		want  bool
	}{
		{"own", cv, true},
		{"other key", other.CheckValue(), false},
		{"empty", "", false},
		{"prefix", cv[:31], false},
		{"longer", cv + "0", false},
		{"upper case", strings.ToUpper(cv), false},
		{"full hmac", cv + cv, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := k.Matches(tt.check); got != tt.want {
				t.Fatalf("Matches(%q) = %v, want %v", tt.check, got, tt.want)
			}
		})
	}
}

func TestZeroKeyPanics(t *testing.T) {
	t.Parallel()
	for name, k := range map[string]*Key{"nil": nil, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			k.CheckValue()
		})
	}
}

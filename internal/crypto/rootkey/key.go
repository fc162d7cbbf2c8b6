package rootkey

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
)

// Size is the length of a root key in bytes.
const Size = 32

const (
	// fileMagic is the first line of the key file.
	fileMagic = "coffer-root-key-v1"
	// checkLabel is the message of the key check value HMAC.
	checkLabel = "coffer root key check v1"
	// redacted is how a Key prints.
	redacted = "rootkey.Key(REDACTED)"
)

// ErrMalformed reports key text that is not a valid root key. The wrapping
// error says what is wrong and never contains the key text.
var ErrMalformed = errors.New("rootkey: malformed root key")

// Key is the service root key: 32 secret bytes. It is incomparable and never
// prints its bytes: fmt, slog and encoding/json all show a redacted
// placeholder. The zero Key is unusable; get one from Generate, Parse,
// FromBase64 or LoadFile.
type Key struct {
	_ [0]func() // incomparable: use Matches, never ==
	// The bytes live behind a pointer so that a Key copied into another
	// struct prints as an address, not as the key, if that struct is
	// formatted with reflection.
	b *[Size]byte
}

// Generate returns a new random key from crypto/rand.
func Generate() (*Key, error) {
	var b [Size]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("rootkey: generate: %w", err)
	}
	return fromBytes(b[:])
}

// fromBytes copies a 32-byte key, rejecting the all-zero key (a placeholder,
// never a generated key).
func fromBytes(p []byte) (*Key, error) {
	if len(p) != Size {
		return nil, fmt.Errorf("%w: key is %d bytes, want %d", ErrMalformed, len(p), Size)
	}
	var zero [Size]byte
	if subtle.ConstantTimeCompare(p, zero[:]) == 1 {
		return nil, fmt.Errorf("%w: key is all zero", ErrMalformed)
	}
	k := &Key{b: new([Size]byte)}
	copy(k.b[:], p)
	return k, nil
}

// Parse reads the key file form: the line "coffer-root-key-v1", then the
// standard base64 encoding of the 32 key bytes on the next line. Whitespace
// around either line (including CRLF line ends) is accepted; anything else is
// ErrMalformed with a reason that never quotes the input.
func Parse(text []byte) (*Key, error) {
	first, rest, ok := bytes.Cut(bytes.TrimSpace(text), []byte("\n"))
	if !ok || string(bytes.TrimSpace(first)) != fileMagic {
		return nil, fmt.Errorf("%w: first line is not %q", ErrMalformed, fileMagic)
	}
	return decode(bytes.TrimSpace(rest))
}

// FromBase64 reads the environment form (COFFER_ROOT_KEY): the standard
// base64 encoding of the 32 key bytes, with optional surrounding whitespace.
func FromBase64(s string) (*Key, error) {
	return decode(bytes.TrimSpace([]byte(s)))
}

// encodedLen is the length of the base64 form of a key.
var encodedLen = base64.StdEncoding.EncodedLen(Size)

func decode(b64 []byte) (*Key, error) {
	if len(b64) != encodedLen {
		// Also rejects extra lines and inner whitespace, which the base64
		// decoder would otherwise skip.
		return nil, fmt.Errorf("%w: want one line of %d base64 characters", ErrMalformed, encodedLen)
	}
	var raw [Size + 1]byte // DecodedLen(44) == 33
	defer clear(raw[:])
	n, err := base64.StdEncoding.Strict().Decode(raw[:], b64)
	if err != nil {
		// err names only an offset; drop it anyway so no caller can
		// mistake it for a place to look at the text.
		return nil, fmt.Errorf("%w: key is not valid standard base64", ErrMalformed)
	}
	return fromBytes(raw[:n])
}

// MarshalFile returns the key file form that Parse reads:
// "coffer-root-key-v1\n" followed by the base64 key and "\n". The result is
// secret; clear it after use.
//
// It is deliberately not named MarshalText: encoding/json, encoding/xml,
// encoding/gob and YAML libraries call any MarshalText they find, which would
// put the key into any config dump or log record that contains it.
func (k *Key) MarshalFile() ([]byte, error) {
	b := k.bytes()
	out := make([]byte, 0, len(fileMagic)+1+encodedLen+1)
	out = append(out, fileMagic...)
	out = append(out, '\n')
	out = base64.StdEncoding.AppendEncode(out, b[:])
	out = append(out, '\n')
	return out, nil
}

// CheckValue returns a key check value that identifies the key without
// revealing it, safe to store in the database and to log: the first 32 hex
// characters (128 bits) of HMAC-SHA256(key, "coffer root key check v1").
func (k *Key) CheckValue() string {
	b := k.bytes()
	m := hmac.New(sha256.New, b[:])
	m.Write([]byte(checkLabel))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// Matches reports whether check is this key's CheckValue, in constant time.
func (k *Key) Matches(check string) bool {
	return hmac.Equal([]byte(k.CheckValue()), []byte(check))
}

// String returns a redacted placeholder.
func (k *Key) String() string { return redacted }

// GoString returns a redacted placeholder.
func (k *Key) GoString() string { return redacted }

// Format prints a redacted placeholder for every verb.
func (k *Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue makes slog print a redacted placeholder.
func (k *Key) LogValue() slog.Value { return slog.StringValue(redacted) }

// bytes returns the key bytes, panicking on a zero or nil Key: using one is a
// broken invariant, not an input error.
func (k *Key) bytes() *[Size]byte {
	if k == nil || k.b == nil {
		panic("rootkey: use of a nil or zero Key")
	}
	return k.b
}

package sqlstore

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/metadata"
)

func TestCodecs(t *testing.T) {
	t.Parallel()
	t.Run("strings", func(t *testing.T) {
		t.Parallel()
		for _, v := range [][]string{nil, {}, {"a", "b"}} {
			s, err := EncodeStrings(v)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeStrings(s)
			if err != nil {
				t.Fatal(err)
			}
			if len(v) == 0 && (s != "[]" || got != nil) || len(v) > 0 && !reflect.DeepEqual(got, v) {
				t.Errorf("%#v: encoded %q, decoded %#v", v, s, got)
			}
		}
		if _, err := DecodeStrings("{"); err == nil || !strings.HasPrefix(err.Error(), "decode string list: ") {
			t.Errorf("bad list: err = %v", err)
		}
	})
	t.Run("annotations", func(t *testing.T) {
		t.Parallel()
		if s, err := EncodeAnnotations(map[string]string{}); err != nil || s != "" {
			t.Errorf("empty map: %q, %v", s, err)
		}
		s, err := EncodeAnnotations(map[string]string{"k": "v"})
		if err != nil || s != `{"k":"v"}` {
			t.Fatalf("encode: %q, %v", s, err)
		}
		if m, err := DecodeAnnotations(s); err != nil || m["k"] != "v" {
			t.Errorf("decode: %v, %v", m, err)
		}
		if m, err := DecodeAnnotations("{}"); err != nil || m != nil {
			t.Errorf("decode {}: %#v, %v", m, err)
		}
		if _, err := DecodeAnnotations(""); err == nil {
			t.Error("decode empty text: no error")
		}
	})
	t.Run("parts", func(t *testing.T) {
		t.Parallel()
		parts := []metadata.Part{{ObjectKey: "a"}, {ObjectKey: "b"}}
		s, err := EncodeParts(parts)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := PartKeys(s)
		if err != nil || !reflect.DeepEqual(keys, []string{"a", "b"}) {
			t.Errorf("keys = %v, %v", keys, err)
		}
		if got, err := DecodeParts("[]"); err != nil || got != nil {
			t.Errorf("decode []: %#v, %v", got, err)
		}
		if _, err := PartKeys("x"); err == nil || !strings.HasPrefix(err.Error(), "decode parts: ") {
			t.Errorf("bad parts: err = %v", err)
		}
	})
}

func TestAppendTagged(t *testing.T) {
	t.Parallel()
	m := func(d string) metadata.Manifest { return metadata.Manifest{Digest: d} }
	rows := []TaggedManifest{
		{Manifest: m("a"), Tag: "1", Tagged: true},
		{Manifest: m("a"), Tag: "2", Tagged: true},
		{Manifest: m("b")},
		{Manifest: m("c"), Tag: "3", Tagged: true},
	}
	got := AppendTagged(NewPage[metadata.Manifest](10), rows)
	want := []metadata.Manifest{{Digest: "a", Tags: []string{"1", "2"}}, {Digest: "b"}, {Digest: "c", Tags: []string{"3"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := AppendTagged(nil, nil); got != nil {
		t.Errorf("no rows: %#v", got)
	}
	if got := NewPage[string](0); got != nil {
		t.Errorf("NewPage(0) = %#v", got)
	}
	if got := NewPage[string](1 << 20); cap(got) != 1024 {
		t.Errorf("NewPage(1<<20) capacity %d", cap(got))
	}
}

package cache_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/metadata"
)

// Every method of metadata.Store (and metadata.DocStore) is one of these.
// A method added to the interface is promoted from the inner store, so it
// compiles, and TestMethodsClassified fails until someone decides here.
var (
	// cachedReads are answered from memory (Store declares them).
	cachedReads = []string{"GetRepository", "ResolveTag"}

	// invalidating writes can change a cached answer or a document
	// authz derives decisions from; Store declares them and bumps the
	// generation after each.
	invalidating = []string{
		"CreateRepository", "CreateRepositoryWith", "UpdateRepository", "UpdateRepositoryDocs",
		"DeleteRepository", "DeleteRepositoryWith", "UpdateDocs",
		"PutManifest", "DeleteTag", "DeleteManifest", "DeleteImage",
		"RecordPull", // LastPulledAt is part of ResolveTag's answer; batched, so cheap
	}

	// passThroughReads change nothing.
	passThroughReads = []string{
		"Close", "Ping", "GetSetting", "ListRepositories",
		"GetBlob", "BlobLinked", "BlobRepositories", "GetUpload",
		"GetManifest", "ListTags", "Referrers", "ListManifests", "ManifestChildren", "ListImages", "ImageTags", "BlobReferenced",
		"UnreferencedBlobs", "UnreferencedLinks", "StaleUploads", "ObjectKeys", "ViewDocs",
		"RepositoryUsage",
	}

	// nonInvalidating writes change rows nothing cached is derived from,
	// and run on the push path, so bumping would empty the cache under
	// push load. Why each cannot change a repository, a tag, a manifest
	// row or a document:
	nonInvalidating = map[string]string{
		"PutSettingIfAbsent":       "settings (account ID, key checks) are neither cached nor policies",
		"CreateUpload":             "upload sessions only",
		"UpdateUpload":             "upload sessions only",
		"DeleteUpload":             "upload sessions only",
		"CommitUpload":             "an upload session, a blob row and a blob link; no manifest or tag",
		"CommitBlob":               "a blob row and a blob link; no manifest or tag",
		"LinkBlob":                 "a blob link only",
		"CommitUploadWithin":       "CommitUpload under a quota: the same rows",
		"CommitBlobWithin":         "CommitBlob under a quota: the same rows",
		"LinkBlobWithin":           "LinkBlob under a quota: the same row",
		"UnlinkBlob":               "a blob link only; manifests referencing the blob are untouched",
		"DeleteBlobIfUnreferenced": "only a blob that no manifest references and no repository links",
		"UnlinkBlobIfUnreferenced": "a blob link only, one no manifest of its repository references",
		"DeleteStaleUpload":        "upload sessions only",
	}
)

func interfaceMethods() []string {
	var out []string
	for _, it := range []reflect.Type{reflect.TypeFor[metadata.Store](), reflect.TypeFor[metadata.DocStore]()} {
		for i := range it.NumMethod() {
			out = append(out, it.Method(i).Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestMethodsClassified checks that every interface method is classified
// exactly once, and that the classification is what Store does: calling
// each method (with zero arguments, on a real inner store) bumps the
// generation exactly when it is listed as invalidating.
func TestMethodsClassified(t *testing.T) {
	t.Parallel()
	class := map[string]string{}
	add := func(kind string, names ...string) {
		for _, n := range names {
			if prev, ok := class[n]; ok {
				t.Errorf("%s is listed as %s and as %s", n, prev, kind)
			}
			class[n] = kind
		}
	}
	add("cached", cachedReads...)
	add("invalidating", invalidating...)
	add("pass-through read", passThroughReads...)
	for n := range nonInvalidating {
		add("non-invalidating write", n)
	}
	methods := interfaceMethods()
	for _, m := range methods {
		if _, ok := class[m]; !ok {
			t.Errorf("metadata.Store method %s is not classified: override it in cache.Store (cached read or "+
				"invalidating write) or list it as a pass-through read or a non-invalidating write, with the reason", m)
		}
	}
	for n := range class {
		if !slices.Contains(methods, n) {
			t.Errorf("%s is classified but is not a metadata.Store method", n)
		}
	}

	_, c := open(t, long)
	v := reflect.ValueOf(c)
	call := func(name string) {
		m := v.MethodByName(name)
		args := make([]reflect.Value, m.Type().NumIn())
		for i := range args {
			args[i] = zeroArg(t.Context(), m.Type().In(i))
		}
		m.Call(args)
	}
	for _, name := range methods {
		if name == "Close" || class[name] == "" {
			continue
		}
		g := c.Generation()
		call(name)
		bumped := c.Generation() != g
		if want := class[name] == "invalidating"; bumped != want {
			t.Errorf("%s (%s): bumped the generation = %v, want %v", name, class[name], bumped, want)
		}
	}
	g := c.Generation()
	call("Close")
	if c.Generation() != g {
		t.Error("Close bumped the generation")
	}
}

// zeroArg is an argument for a call with "nothing" in it: the context, a
// function that does nothing and returns zero values, or a zero value.
func zeroArg(ctx context.Context, typ reflect.Type) reflect.Value {
	switch {
	case typ == reflect.TypeFor[context.Context]():
		return reflect.ValueOf(ctx)
	case typ.Kind() == reflect.Func:
		return reflect.MakeFunc(typ, func([]reflect.Value) []reflect.Value {
			out := make([]reflect.Value, typ.NumOut())
			for i := range out {
				out[i] = reflect.Zero(typ.Out(i))
			}
			return out
		})
	}
	return reflect.Zero(typ)
}

type field struct {
	name   string
	shared bool // holds memory a shallow copy shares
}

// reflectFields lists the fields of struct v.
func reflectFields(v any) []field {
	typ := reflect.TypeOf(v)
	var out []field
	for i := range typ.NumField() {
		f := typ.Field(i)
		switch f.Type.Kind() {
		case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
			out = append(out, field{typ.Name() + "." + f.Name, true})
		case reflect.Array, reflect.Struct:
			// time.Time holds a *Location, shared but immutable; other
			// composite fields would need a closer look.
			out = append(out, field{typ.Name() + "." + f.Name, f.Type != reflect.TypeFor[time.Time]()})
		default:
			out = append(out, field{typ.Name() + "." + f.Name, false})
		}
	}
	return out
}

package ecrapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/cofferhq/coffer/internal/blobhttp"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/auth/presign"
	"github.com/cofferhq/coffer/internal/auth/token"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
	"github.com/cofferhq/coffer/internal/registry"
	"github.com/cofferhq/coffer/internal/storage/fs"
)

// imgHandler is a Handler over a real registry (SQLite and files in a temp
// directory) that allows everything: the tests here are about the ECR
// shapes and semantics, server tests cover authorization.
func imgHandler(tb testing.TB) (*Handler, *registry.Registry, metadata.Store) {
	tb.Helper()
	return imgHandlerIn(tb, tb.TempDir())
}

// imgHandlerIn is imgHandler with its database at dir/db.
func imgHandlerIn(tb testing.TB, dir string) (*Handler, *registry.Registry, metadata.Store) {
	tb.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "db")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	driver, err := fs.New(fs.Config{Root: filepath.Join(dir, "blobs")})
	if err != nil {
		tb.Fatal(err)
	}
	root, err := rootkey.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	reg, err := registry.New(registry.Config{Region: "us-east-1", AccountID: "123456789012", Store: store, Driver: driver,
		Keys: registry.RootKeys{Root: root}, Root: root})
	if err != nil {
		tb.Fatal(err)
	}
	tk, _ := token.NewKey(bytes.Repeat([]byte{1}, 32))
	pk, _ := presign.NewKey(bytes.Repeat([]byte{2}, 32))
	h, err := New(Config{Registry: reg, Authz: auth.AllowAll{}, Tokens: tk, Presign: pk, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	return h, reg, store
}

// imgCall runs one operation through ServeHTTP as the pipeline would.
func imgCall(h *Handler, op string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	req.Header.Set("X-Amz-Target", TargetPrefix+op)
	info := &auth.Info{Principal: auth.Principal{Type: "IAMUser", ARN: "arn:aws:iam::123456789012:user/fuzz", AccountID: "123456789012"}}
	req = req.WithContext(auth.WithInfo(req.Context(), info))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

var imgOpNames = []string{"PutImage", "BatchGetImage", "BatchDeleteImage", "ListImages", "DescribeImages",
	"BatchCheckLayerAvailability", "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload", "GetDownloadUrlForLayer"}

// FuzzDecodeImageRequests feeds arbitrary bodies to every image and layer
// operation of a live handler. Whatever the input, the answer is a 200
// with a JSON object or a 400 with an ECR error type and a message: never a
// panic, and never a 500 (which would mean input reached a code path that
// does not validate it).
func FuzzDecodeImageRequests(f *testing.F) {
	h, reg, _ := imgHandler(f)
	ctx := context.Background()
	repo, err := reg.CreateRepository(ctx, metadata.Repository{Name: "fuzz/repo"}, false)
	if err != nil {
		f.Fatal(err)
	}
	layer := []byte("layer bytes")
	st, _ := reg.StartUpload(ctx, repo)
	ld := registry.ManifestDigest(layer)
	if _, err := reg.CompleteUpload(ctx, repo, st.ID, ld, bytes.NewReader(layer), 0, int64(len(layer))); err != nil {
		f.Fatal(err)
	}
	manifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		string(ld) + `","size":11},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + string(ld) + `","size":11}]}`
	if _, err := reg.PutManifest(ctx, repo, "v1", "", []byte(manifest)); err != nil {
		f.Fatal(err)
	}
	md := registry.ManifestDigest([]byte(manifest))
	mj, _ := json.Marshal(manifest)
	seeds := map[string][]string{
		"PutImage":                    {`{"repositoryName":"fuzz/repo","imageManifest":` + string(mj) + `,"imageTag":"v2"}`, `{"repositoryName":"fuzz/repo","imageManifest":"{}","imageDigest":"sha256:00"}`},
		"BatchGetImage":               {`{"repositoryName":"fuzz/repo","imageIds":[{"imageTag":"v1"},{"imageDigest":"` + string(md) + `"},{}],"acceptedMediaTypes":["x"]}`},
		"BatchDeleteImage":            {`{"repositoryName":"fuzz/repo","imageIds":[{"imageTag":"nope"},{"imageDigest":"sha256:zz"}]}`},
		"ListImages":                  {`{"repositoryName":"fuzz/repo","maxResults":1,"filter":{"tagStatus":"TAGGED"}}`, `{"repositoryName":"fuzz/repo","nextToken":"bGkxAHNoYTI1Njp4AA"}`},
		"DescribeImages":              {`{"repositoryName":"fuzz/repo","imageIds":[{"imageTag":"v1"}]}`, `{"repositoryName":"fuzz/repo","maxResults":1000,"filter":{"imageStatus":"ARCHIVED"}}`},
		"BatchCheckLayerAvailability": {`{"repositoryName":"fuzz/repo","layerDigests":["` + string(ld) + `","","sha512:ab"]}`},
		"InitiateLayerUpload":         {`{"repositoryName":"fuzz/repo","registryId":"123456789012"}`},
		"UploadLayerPart":             {`{"repositoryName":"fuzz/repo","uploadId":"0123abcd-0000-0000-0000-000000000000","partFirstByte":0,"partLastByte":2,"layerPartBlob":"YWJj"}`},
		"CompleteLayerUpload":         {`{"repositoryName":"fuzz/repo","uploadId":"0123abcd-0000-0000-0000-000000000000","layerDigests":["` + string(ld) + `"]}`},
		"GetDownloadUrlForLayer":      {`{"repositoryName":"fuzz/repo","layerDigest":"` + string(ld) + `"}`, `{"repositoryName":"Fuzz","layerDigest":"x"}`},
	}
	for i, op := range imgOpNames {
		for _, s := range seeds[op] {
			f.Add(uint8(i), []byte(s))
		}
		f.Add(uint8(i), []byte(`{"repositoryName":null,"registryId":"1"}`))
	}
	f.Fuzz(func(t *testing.T, opIndex uint8, body []byte) {
		op := imgOpNames[int(opIndex)%len(imgOpNames)]
		w := imgCall(h, op, body)
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %q: answer is not a JSON object: %s", op, body, w.Body.Bytes())
		}
		switch w.Code {
		case http.StatusOK:
			if _, isErr := out["__type"]; isErr {
				t.Fatalf("%s %q: 200 with an error body %s", op, body, w.Body.Bytes())
			}
		case http.StatusBadRequest:
			typ, _ := out["__type"].(string)
			msg, _ := out["message"].(string)
			if typ == "" || msg == "" || w.Header().Get("x-amzn-ErrorType") != typ {
				t.Fatalf("%s %q: error without type or message: %s", op, body, w.Body.Bytes())
			}
		default:
			t.Fatalf("%s %q: status %d %s", op, body, w.Code, w.Body.Bytes())
		}
	})
}

func TestImageTokens(t *testing.T) {
	t.Parallel()
	d := "sha256:" + strings.Repeat("0f", 32)
	for _, tc := range []struct {
		kind, digest, tag string
	}{{tokenListImages, d, "v1"}, {tokenListImages, d, ""}, {tokenDescribeImages, d, ""}} {
		gd, gt, err := decodeImageToken(tc.kind, encodeImageToken(tc.kind, tc.digest, tc.tag))
		if err != nil || gd != tc.digest || gt != tc.tag {
			t.Errorf("round trip %v: %s %s %v", tc, gd, gt, err)
		}
	}
	for _, bad := range []string{"", "!!", encodeImageToken(tokenDescribeImages, d, ""), encodeImageToken(tokenListImages, "sha256:x", ""),
		encodeImageToken(tokenListImages, d, "bad tag"), strings.Repeat("A", 2000)} {
		if _, _, err := decodeImageToken(tokenListImages, bad); err == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
}

func FuzzLayerDownloadPath(f *testing.F) {
	f.Add("/_coffer/layers/team/app/sha256:"+strings.Repeat("ab", 32), "bytes=0-10", int64(100))
	f.Add("/_coffer/layers//sha256:", "bytes=-", int64(0))
	f.Fuzz(func(t *testing.T, path, rng string, size int64) {
		if size < 0 {
			size = -size
		}
		if name, d, ok := splitLayerPath(path); ok {
			if _, err := registry.ParseRepoName(string(name)); err != nil {
				t.Fatalf("accepted repository %q", name)
			}
			if _, err := registry.ParseDigest(string(d)); err != nil {
				t.Fatalf("accepted digest %q", d)
			}
		}
		off, n, ok, _ := blobhttp.ParseRange(rng, size)
		if ok && (off < 0 || n <= 0 || off+n > size) {
			t.Fatalf("range %q of %d = %d+%d", rng, size, off, n)
		}
	})
}

// TestUploadLayerPartLimits: the body bound admits ECR's largest part and
// refuses one byte more.
func TestUploadLayerPartLimits(t *testing.T) {
	t.Parallel()
	h, reg, _ := imgHandler(t)
	ctx := context.Background()
	if _, err := reg.CreateRepository(ctx, metadata.Repository{Name: "big/repo"}, false); err != nil {
		t.Fatal(err)
	}
	w := imgCall(h, "InitiateLayerUpload", []byte(`{"repositoryName":"big/repo"}`))
	var up struct {
		UploadID string `json:"uploadId"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &up); err != nil || up.UploadID == "" {
		t.Fatalf("InitiateLayerUpload: %s", w.Body.String())
	}
	part := func(n int) *httptest.ResponseRecorder {
		blob, _ := json.Marshal(bytes.Repeat([]byte{'x'}, n))
		body := fmt.Sprintf(`{"repositoryName":"big/repo","uploadId":%q,"partFirstByte":0,"partLastByte":%d,"layerPartBlob":%s}`, up.UploadID, n-1, blob)
		return imgCall(h, "UploadLayerPart", []byte(body))
	}
	if w := part(MaxLayerPart + 1); w.Code != 400 || !strings.Contains(w.Body.String(), "InvalidLayerPartException") {
		t.Fatalf("part of %d bytes: %d %.200s", MaxLayerPart+1, w.Code, w.Body.String())
	}
	if w := part(MaxLayerPart); w.Code != 200 {
		t.Fatalf("part of %d bytes: %d %.200s", MaxLayerPart, w.Code, w.Body.String())
	}
	// Past the body bound the request is refused before it is parsed.
	big := bytes.Repeat([]byte{' '}, MaxLayerPartBody+1)
	if w := imgCall(h, "UploadLayerPart", big); w.Code != 400 || !strings.Contains(w.Body.String(), "too large") {
		t.Fatalf("oversized body: %d %s", w.Code, w.Body.String())
	}
}

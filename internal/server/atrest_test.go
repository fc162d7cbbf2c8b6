package server

import (
	"bytes"
	"database/sql"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	_ "modernc.org/sqlite"
)

// SPEC ENC-03: every stored byte is ciphertext; no plaintext of a pushed
// layer or manifest is anywhere in the data directory.
func TestNoPlaintextAtRest(t *testing.T) {
	t.Parallel()
	srv, app := newTestServer(t, nil)
	marker := []byte("coffer-plaintext-marker-" + strings.Repeat("5f3a9c", 8))
	layer := static.NewLayer(bytes.Repeat(marker, 4096), types.OCILayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.Annotations(img, map[string]string{"marker": string(marker)}).(v1.Image)
	r := ref(t, srv, "plain/check:v1")
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	app.Close() // flush the WAL so the database file is complete
	probe := marker[:32]
	err = filepath.WalkDir(app.cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, probe) {
			t.Errorf("plaintext marker found in %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A flipped byte in any stored object fails the read with a clear error;
// altered content is never served.
func TestFlippedByteFailsRead(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"layers", "manifests"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv, app := newTestServer(t, nil)
			img, _ := random.Image(200<<10, 1)
			r := ref(t, srv, "flip/"+kind+":v1")
			if err := remote.Write(r, img); err != nil {
				t.Fatal(err)
			}
			var files []string
			filepath.WalkDir(filepath.Join(app.cfg.DataDir, "blobs", kind), func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					files = append(files, p)
				}
				return err
			})
			if len(files) == 0 {
				t.Fatal("no stored objects found")
			}
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/2] ^= 0x01
				if err := os.WriteFile(f, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if kind == "manifests" {
				resp, err := http.Get(srv.URL + "/v2/flip/manifests/manifests/v1")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 500 || !strings.Contains(string(body), "integrity") {
					t.Fatalf("GET corrupted manifest = %d %s", resp.StatusCode, body)
				}
				return
			}
			layers, _ := img.Layers()
			d, _ := layers[0].Digest()
			resp, err := http.Get(srv.URL + "/v2/flip/layers/blobs/" + d.String())
			if err != nil {
				t.Fatal(err)
			}
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && rerr == nil {
				t.Fatalf("corrupted blob served with 200 and a complete body of %d bytes", len(body))
			}
		})
	}
}

// A metadata row pointed at another blob's object (same domain, valid
// ciphertext) is caught: objects are bound to their digest.
func TestSwappedMetadataRowFailsRead(t *testing.T) {
	t.Parallel()
	srv, app := newTestServer(t, nil)
	a := static.NewLayer(bytes.Repeat([]byte("a"), 100<<10), types.OCILayer)
	b := static.NewLayer(bytes.Repeat([]byte("b"), 100<<10), types.OCILayer)
	img, err := mutate.AppendLayers(empty.Image, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, srv, "swap/test:v1"), img); err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	sqldb, err := sql.Open("sqlite", filepath.Join(app.cfg.DataDir, "coffer.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	res, err := sqldb.Exec(`UPDATE blobs SET object_key = (SELECT object_key FROM blobs WHERE digest = ?) WHERE digest = ?`, db.String(), da.String())
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("updated %d rows", n)
	}
	resp, err := http.Get(srv.URL + "/v2/swap/test/blobs/" + da.String())
	if err != nil {
		t.Fatal(err)
	}
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 200 && rerr == nil && bytes.Equal(body, bytes.Repeat([]byte("b"), 100<<10)) {
		t.Fatal("a swapped metadata row served another blob's content as complete")
	}
	if rerr == nil && resp.StatusCode != 500 {
		t.Fatalf("GET = %d, want 500 or a cut connection", resp.StatusCode)
	}
}

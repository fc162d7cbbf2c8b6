package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/cofferhq/coffer/internal/auth/presign"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/iam"
)

// fetch GETs (or HEADs) u with optional headers from an HTTP client.
func fetch(t *testing.T, hc *http.Client, method, u string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

func fromIP(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

func TestECRLayerDownloadURL(t *testing.T) {
	t.Parallel()
	e := newImgEnv(t, "GetDownloadUrlForLayer")
	ctx := context.Background()
	repo := "ecr/download"
	e.repo(repo, "")
	cfg, layer, data := e.baseImage(repo, 200<<10+17)
	getURL := func(c *ecr.Client, d string) (string, error) {
		out, err := c.GetDownloadUrlForLayer(ctx, &ecr.GetDownloadUrlForLayerInput{RepositoryName: aws.String(repo), LayerDigest: aws.String(d)})
		if err != nil {
			return "", err
		}
		if aws.ToString(out.LayerDigest) != d {
			t.Fatalf("layerDigest = %s, want %s", aws.ToString(out.LayerDigest), d)
		}
		return aws.ToString(out.DownloadUrl), nil
	}

	_, err := getURL(e.ecr, layer.Digest)
	wantCode(t, "a layer no image uses", err, "LayerInaccessibleException")
	if _, err := e.putImage(repo, imageManifest(cfg, "", layer), "v1"); err != nil {
		t.Fatal(err)
	}
	_, err = getURL(e.ecr, digestOf([]byte("elsewhere")))
	wantCode(t, "a layer not in the repository", err, "LayersNotFoundException")
	_, err = getURL(e.ecr, "sha256:short")
	wantCode(t, "an invalid digest", err, "InvalidParameterException")

	issued := time.Now()
	link, err := getURL(e.ecr, layer.Digest)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	srvURL, _ := url.Parse(e.srv.URL)
	exp, _ := strconv.ParseInt(u.Query().Get(presign.ParamExpires), 10, 64)
	if u.Host != srvURL.Host || u.Path != "/_coffer/layers/"+repo+"/"+layer.Digest ||
		exp < issued.Add(presign.Lifetime).Unix()-1 || exp > time.Now().Add(presign.Lifetime).Unix() {
		t.Fatalf("downloadUrl = %s (expires %d)", link, exp)
	}

	t.Run("exact bytes, no credentials needed", func(t *testing.T) {
		status, hdr, body := fetch(t, nil, "GET", link)
		if status != 200 || !bytes.Equal(body, data) || digestOf(body) != layer.Digest || hdr.Get("Content-Length") != strconv.Itoa(len(data)) {
			t.Fatalf("GET = %d, %d bytes (digest %s)", status, len(body), digestOf(body))
		}
		status, hdr, body = fetch(t, nil, "HEAD", link)
		if status != 200 || len(body) != 0 || hdr.Get("Content-Length") != strconv.Itoa(len(data)) {
			t.Fatalf("HEAD = %d %v", status, hdr)
		}
	})

	t.Run("Range", func(t *testing.T) {
		for _, tc := range []struct {
			rng        string
			start, end int // inclusive
		}{
			{"bytes=1000-70999", 1000, 70999},
			{"bytes=-10", len(data) - 10, len(data) - 1},
			{"bytes=131072-", 131072, len(data) - 1},
		} {
			status, hdr, body := fetch(t, nil, "GET", link, "Range", tc.rng)
			wantCR := "bytes " + strconv.Itoa(tc.start) + "-" + strconv.Itoa(tc.end) + "/" + strconv.Itoa(len(data))
			if status != 206 || hdr.Get("Content-Range") != wantCR || !bytes.Equal(body, data[tc.start:tc.end+1]) {
				t.Errorf("%s = %d %q, %d bytes; want %s", tc.rng, status, hdr.Get("Content-Range"), len(body), wantCR)
			}
		}
		status, hdr, _ := fetch(t, nil, "GET", link, "Range", "bytes="+strconv.Itoa(len(data))+"-")
		if status != 416 || hdr.Get("Content-Range") != "bytes */"+strconv.Itoa(len(data)) {
			t.Errorf("range past the end = %d %q", status, hdr.Get("Content-Range"))
		}
	})

	refused := func(t *testing.T, what, u, code, text string) {
		t.Helper()
		status, hdr, body := fetch(t, nil, "GET", u)
		if status != http.StatusForbidden || !strings.Contains(string(body), "<Code>"+code+"</Code>") ||
			!strings.Contains(string(body), text) || hdr.Get("Content-Type") != "application/xml" || bytes.Contains(body, data[:64]) {
			t.Fatalf("%s = %d %s", what, status, body)
		}
	}

	t.Run("tampered", func(t *testing.T) {
		// The same signature on another layer of the repository.
		refused(t, "another digest", strings.Replace(link, layer.Digest, cfg.Digest, 1), "SignatureDoesNotMatch", "does not match")
		// A later expiry.
		q := u.Query()
		q.Set(presign.ParamExpires, strconv.FormatInt(exp+3600, 10))
		v := *u
		v.RawQuery = q.Encode()
		refused(t, "a later expiry", v.String(), "SignatureDoesNotMatch", "does not match")
		q = u.Query()
		q.Del(presign.ParamSignature)
		v.RawQuery = q.Encode()
		refused(t, "no signature", v.String(), "AccessDenied", presign.ParamSignature)
		status, _, _ := fetch(t, nil, "POST", link)
		if status != http.StatusMethodNotAllowed {
			t.Fatalf("POST = %d", status)
		}
	})

	t.Run("expired", func(t *testing.T) {
		// Sign an expired URL with the server's own key, as an attacker
		// replaying an old URL would present it.
		root, err := rootkey.LoadFile(e.app.cfg.RootKeyPath())
		if err != nil {
			t.Fatal(err)
		}
		key, err := presignKey(ctx, e.app.store, root)
		if err != nil {
			t.Fatal(err)
		}
		admin, err := e.app.iam.GetUser(ctx, "admin")
		if err != nil {
			t.Fatal(err)
		}
		q, err := key.Sign(presign.Claims{Repository: repo, Digest: layer.Digest, Expires: time.Now().Add(-time.Second),
			Principal: presign.Principal{Type: "IAMUser", ARN: admin.ARN, AccountID: e.app.accountID, PrincipalID: admin.ID, UserName: "admin"}})
		if err != nil {
			t.Fatal(err)
		}
		v := *u
		v.RawQuery = q.Encode()
		refused(t, "expired URL", v.String(), "AccessDenied", "Request has expired")
		// The same key with a live expiry works: the refusal was the expiry.
		q, _ = key.Sign(presign.Claims{Repository: repo, Digest: layer.Digest, Expires: time.Now().Add(time.Minute),
			Principal: presign.Principal{Type: "IAMUser", ARN: admin.ARN, AccountID: e.app.accountID, PrincipalID: admin.ID, UserName: "admin"}})
		v.RawQuery = q.Encode()
		if status, _, _ := fetch(t, nil, "GET", v.String()); status != 200 {
			t.Fatalf("fresh crafted URL = %d", status)
		}
	})

	t.Run("permission removed after issue", func(t *testing.T) {
		id, secret := createUser(t, e.app, "puller", "AmazonEC2ContainerRegistryReadOnly")
		link, err := getURL(ecrClient(e.srv, id, secret, nil), layer.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if status, _, body := fetch(t, nil, "GET", link); status != 200 || !bytes.Equal(body, data) {
			t.Fatalf("download before revocation = %d", status)
		}
		if err := e.app.iam.DetachPolicy(ctx, iam.UserEntity(), "puller", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"); err != nil {
			t.Fatal(err)
		}
		refused(t, "download after revocation", link, "AccessDenied", "is not authorized to perform: ecr:GetDownloadUrlForLayer")
	})

	t.Run("principal deleted after issue", func(t *testing.T) {
		// A repository policy still names the user, but the URL's
		// principal is gone: refused, whatever the policies say.
		id, secret := createUser(t, e.app, "leaver", "AmazonEC2ContainerRegistryReadOnly")
		link, err := getURL(ecrClient(e.srv, id, secret, nil), layer.Digest)
		if err != nil {
			t.Fatal(err)
		}
		u, err := e.app.iam.GetUser(ctx, "leaver")
		if err != nil {
			t.Fatal(err)
		}
		allow := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + u.ARN + `"},"Action":"ecr:GetDownloadUrlForLayer"}]}`
		admin := ecrClient(e.srv, adminID, adminSecret, nil)
		if _, err := admin.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: aws.String(repo), PolicyText: aws.String(allow)}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			admin.DeleteRepositoryPolicy(ctx, &ecr.DeleteRepositoryPolicyInput{RepositoryName: aws.String(repo)})
		})
		if err := e.app.iam.DetachPolicy(ctx, iam.UserEntity(), "leaver", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"); err != nil {
			t.Fatal(err)
		}
		if status, _, _ := fetch(t, nil, "GET", link); status != 200 {
			t.Fatalf("download through the repository policy = %d", status)
		}
		if err := e.app.iam.DeleteAccessKey(ctx, "leaver", id); err != nil {
			t.Fatal(err)
		}
		if err := e.app.iam.DeleteUser(ctx, "leaver"); err != nil {
			t.Fatal(err)
		}
		refused(t, "download after the user's deletion", link, "AccessDenied", "no longer exists")
	})

	t.Run("the downloader's own context decides", func(t *testing.T) {
		id, secret := createUser(t, e.app, "onlyhere", "AmazonEC2ContainerRegistryReadOnly")
		deny := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecr:*","Resource":"*",
			"Condition":{"NotIpAddress":{"aws:SourceIp":"127.0.0.1/32"}}}]}`
		if err := e.app.iam.PutInlinePolicy(ctx, iam.UserEntity(), "onlyhere", "only-127-0-0-1", deny); err != nil {
			t.Fatal(err)
		}
		link, err := getURL(ecrClient(e.srv, id, secret, fromIP("127.0.0.1")), layer.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if status, _, _ := fetch(t, fromIP("127.0.0.1"), "GET", link); status != 200 {
			t.Fatalf("download from 127.0.0.1 = %d", status)
		}
		status, _, body := fetch(t, fromIP("127.0.0.2"), "GET", link)
		if status != http.StatusForbidden || !strings.Contains(string(body), "explicit deny") {
			t.Fatalf("download from 127.0.0.2 = %d %s", status, body)
		}
	})
}

package audit

import (
	"reflect"
	"strings"
	"testing"
)

func TestScrubDropsSecretsAtAnyDepth(t *testing.T) {
	t.Parallel()
	type creds struct {
		AccessKeyID     string `json:"accessKeyId"`
		SecretAccessKey string `json:"secretAccessKey"`
	}
	in := map[string]any{
		"userName":          "alice",
		"password":          "p",
		"NewPassword":       "p",
		"secret_access_key": "s",
		"nextToken":         "page-2",
		"clientToken":       "idem-1",
		"credentials":       creds{AccessKeyID: "ASIA1", SecretAccessKey: "s"},
		"list":              []any{map[string]any{"sessionToken": "t", "keep": 1}, "x"},
		"strs":              map[string]string{"authorizationToken": "t", "proxyEndpoint": "https://p"},
		"layerPartBlob":     []byte("bytes"),
		"Plaintext":         "k",
		"webIdentityToken":  "jwt",
		"encryptionContext": map[string]any{"aws:ecr:arn": "arn:aws:ecr:us-east-1:111122223333:repository/app"},
		"imageManifest":     `{"schemaVersion":2}`,
	}
	want := map[string]any{
		"userName":          "alice",
		"nextToken":         "page-2",
		"clientToken":       "idem-1",
		"credentials":       map[string]any{"accessKeyId": "ASIA1"},
		"list":              []any{map[string]any{"keep": 1}, "x"},
		"strs":              map[string]any{"proxyEndpoint": "https://p"},
		"encryptionContext": map[string]any{"aws:ecr:arn": "arn:aws:ecr:us-east-1:111122223333:repository/app"},
		"imageManifest":     `{"schemaVersion":2}`,
	}
	if got := Scrub(in); !reflect.DeepEqual(got, want) {
		t.Errorf("Scrub =\n%#v\nwant\n%#v", got, want)
	}
}

func TestScrubBounds(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("a", maxScrubString+1)
	got := Scrub(map[string]any{"imageManifest": big, "ids": make([]string, maxScrubList+5), "raw": []byte{1, 2}}).(map[string]any)
	if s := got["imageManifest"].(string); !strings.HasPrefix(s, "<omitted: 32769 bytes, sha256:") {
		t.Errorf("big string = %.60s", s)
	}
	if l := got["ids"].([]any); len(l) != maxScrubList+1 || l[maxScrubList] != "<omitted: 5 more items>" {
		t.Errorf("long list has %d items", len(l))
	}
	if got["raw"] != "<omitted: 2 bytes>" {
		t.Errorf("bytes = %v", got["raw"])
	}
	if Scrub(nil) != nil || Scrub(map[string]any{}) != nil || Scrub(map[string]any{"password": "x"}) != nil {
		t.Error("empty parameters should scrub to nil (null)")
	}
	deep := map[string]any{}
	cur := deep
	for range 40 {
		next := map[string]any{}
		cur["a"] = next
		cur = next
	}
	Scrub(deep) // bounded, no panic
}

func TestIsSecretKey(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"password", "Password", "secretAccessKey", "SecretAccessKey", "sessionToken", "SessionToken",
		"token", "authorizationToken", "plaintext", "Plaintext", "layerPartBlob", "privateKey", "aws_secret_access_key", "TokenCode"} {
		if !IsSecretKey(k) {
			t.Errorf("IsSecretKey(%q) = false", k)
		}
	}
	for _, k := range []string{"nextToken", "NextToken", "repositoryName", "keyId", "accessKeyId", "encryptionContext", "imageManifest", "userName"} {
		if IsSecretKey(k) {
			t.Errorf("IsSecretKey(%q) = true", k)
		}
	}
}

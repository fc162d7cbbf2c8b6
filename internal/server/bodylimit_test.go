package server

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// Before its signature is checked, an AWS-protocol request may make the
// server read at most maxAPIBody, except ECR's UploadLayerPart, which
// carries a layer part (ecrapi.MaxLayerPartBody).
func TestAWSBodyLimitPerOperation(t *testing.T) {
	t.Parallel()
	srv, _ := newAuthServer(t)
	big := strings.Repeat("a", maxAPIBody+1)

	status, body := ecrRaw(t, srv.URL, adminID, adminSecret, "DescribeRepositories", map[string]any{"nextToken": big})
	var e struct {
		Type string `json:"__type"`
	}
	json.Unmarshal(body, &e)
	if status != 413 || e.Type != "SerializationException" || !bytes.Contains(body, []byte("DescribeRepositories")) {
		t.Fatalf("DescribeRepositories with %d bytes = %d %s", len(big), status, body)
	}
	// UploadLayerPart may carry more: the request gets past the limit and
	// its signature (it then fails for its unknown upload, not its size).
	status, body = ecrRaw(t, srv.URL, adminID, adminSecret, "UploadLayerPart", map[string]any{
		"repositoryName": "nope/nothing", "uploadId": "00000000-0000-0000-0000-000000000000",
		"partFirstByte": 0, "partLastByte": 0, "layerPartBlob": []byte(big)})
	if status == 413 {
		t.Fatalf("UploadLayerPart of %d bytes refused for its size: %s", len(big), body)
	}
}

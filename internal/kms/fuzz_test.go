package kms

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/auth"
)

// FuzzRequest feeds arbitrary bodies to every operation through the
// handler, as an account administrator: the answer is always a JSON object
// with status 200 or a client error, never a panic or a server fault.
func FuzzRequest(f *testing.F) {
	e := newEnv(f, envOpts{noEvents: true})
	h := NewHandler(e.svc)
	admin := e.admin().principal
	ops := slices.Sorted(func(yield func(string) bool) {
		for op := range operations {
			if !yield(op) {
				return
			}
		}
	})
	key, err := e.svc.CreateKey(f.Context(), e.admin().caller(), &CreateKeyInput{})
	if err != nil {
		f.Fatal(err)
	}
	id := key.KeyMetadata.KeyId
	for i := range ops {
		f.Add(uint8(i), `{"KeyId":"`+id+`"}`)
	}
	f.Add(uint8(0), `{"KeyId":"alias/aws/ecr","Limit":1000,"Marker":"bTE6"}`)
	f.Add(uint8(3), `{"CiphertextBlob":"AQ==","EncryptionContext":{"a":"b"}}`)
	f.Add(uint8(5), `{"KeyId":"`+id+`","GranteePrincipal":"ecr.us-east-1.amazonaws.com","Operations":["Decrypt"],"Constraints":{"EncryptionContextSubset":{"k":"v"}}}`)
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		op := ops[int(which)%len(ops)]
		if op == "ScheduleKeyDeletion" || op == "DisableKey" || op == "PutKeyPolicy" || op == "CreateKey" {
			// Keep the seeded key usable and the store small.
			if strings.Contains(body, id) || op == "CreateKey" {
				return
			}
		}
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", TargetPrefix+op)
		req = req.WithContext(auth.WithInfo(req.Context(), &auth.Info{Principal: admin}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %q: response is not JSON: %v", op, body, err)
		}
		if rec.Code != 200 && rec.Code != 400 {
			t.Fatalf("%s %q: status %d %v", op, body, rec.Code, out)
		}
	})
}

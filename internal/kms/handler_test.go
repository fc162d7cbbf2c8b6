package kms

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/auth"
)

// TestHandlerFillsInfo: the handler names the action, the key and the
// parameters in the request's auth.Info for the request audit, sets the
// error code on failure, and the event carries the request's identity.
func TestHandlerFillsInfo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := NewHandler(e.svc)
	key, err := e.svc.CreateKey(t.Context(), e.admin().caller(), &CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	e.takeEvents()
	send := func(op, body string, p auth.Principal) (*auth.Info, *httptest.ResponseRecorder) {
		info := &auth.Info{RequestID: "req-1", Principal: p, SourceIP: netip.MustParseAddr("192.0.2.7"), UserAgent: "ua/1"}
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", TargetPrefix+op)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(auth.WithInfo(req.Context(), info)))
		return info, rec
	}
	info, rec := send("Encrypt", `{"KeyId":"`+key.KeyMetadata.KeyId+`","Plaintext":"eA==","EncryptionContext":{"a":"b"}}`, e.admin().principal)
	if rec.Code != 200 || info.Action != "kms:Encrypt" || info.EventName != "Encrypt" || len(info.Resources) != 1 ||
		info.Resources[0] != key.KeyMetadata.Arn || info.Params["keyId"] != key.KeyMetadata.KeyId || info.ErrorCode != "" {
		t.Fatalf("info = %+v (%d %s)", info, rec.Code, rec.Body)
	}
	if rec.Header().Get("x-amzn-RequestId") != "req-1" {
		t.Errorf("headers = %v", rec.Header())
	}
	evs := e.takeEvents()
	if len(evs) != 1 || evs[0].RequestID != "req-1" || evs[0].SourceIP != "192.0.2.7" || evs[0].UserAgent != "ua/1" ||
		evs[0].Principal.ARN != adminARN || evs[0].InvokedBy != "" {
		t.Fatalf("events = %+v", evs)
	}
	nobody := e.newUser("nobody")
	info, rec = send("DescribeKey", `{"KeyId":"`+key.KeyMetadata.Arn+`"}`, nobody.principal)
	if rec.Code != 400 || info.ErrorCode != "AccessDeniedException" || !strings.Contains(info.ErrorMessage, nobody.arn) ||
		rec.Header().Get("x-amzn-ErrorType") != "AccessDeniedException" || len(info.Resources) != 1 {
		t.Fatalf("denied info = %+v (%s)", info, rec.Body)
	}
	if evs := e.takeEvents(); len(evs) != 1 || evs[0].ErrorCode != "AccessDeniedException" || evs[0].KeyARN != key.KeyMetadata.Arn {
		t.Fatalf("denied events = %+v", evs)
	}
	// A request without a principal is anonymous and denied.
	_, rec = send("ListKeys", `{}`, auth.Anonymous)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "AccessDeniedException") {
		t.Fatalf("anonymous ListKeys = %d %s", rec.Code, rec.Body)
	}
}

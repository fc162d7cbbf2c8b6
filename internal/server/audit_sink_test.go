package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/config"
)

// A configured webhook receives the same records the trail keeps (#8).
func TestAuditWebhookFromConfig(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var names []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Records []struct {
				EventName string `json:"eventName"`
			}
		}
		json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		for _, rec := range body.Records {
			names = append(names, rec.EventName)
		}
		mu.Unlock()
	}))
	defer hook.Close()
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.AdminAccessKeyID, cfg.AdminSecretAccessKey = adminID, adminSecret
	cfg.AuditWebhookURL = hook.URL
	cfg.AuditRetentionDays = 30
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	app, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.Handler())
	defer func() {
		srv.Close()
		app.Close()
	}()
	loginToken(t, ecrClient(srv, adminID, adminSecret, nil))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		got := append([]string(nil), names...)
		mu.Unlock()
		for _, n := range got {
			if n == "GetAuthorizationToken" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the webhook got %v, want a GetAuthorizationToken record", names)
}

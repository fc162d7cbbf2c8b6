package main

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/auth"
)

// auditData makes a data directory with a closed audit trail of n
// records, as the server leaves it.
func auditData(t *testing.T, n int) string {
	t.Helper()
	data := t.TempDir()
	same := func(b []byte) ([]byte, error) { return append([]byte(nil), b...), nil }
	key, err := audit.LoadOrCreateSigningKey(audit.SigningKeyPath(data), same, same)
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.NewStore(audit.Config{Dir: audit.Dir(data), Region: "us-east-1", AccountID: "111122223333",
		SigningKey: key, FileMaxEvents: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		info := &auth.Info{RequestID: "req-" + string(rune('a'+i)), Time: time.Now(), SourceIP: netip.MustParseAddr("192.0.2.1"),
			Principal: auth.Anonymous, Action: "ecr:BatchGetImage", EventName: "BatchGetImage"}
		if err := s.Record(context.Background(), info, audit.Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return data
}

func TestAuditCommands(t *testing.T) {
	t.Parallel()
	data := auditData(t, 10)

	r := runCoffer(nil, "audit", "verify", "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "OK: no file was modified") || !strings.Contains(r.stdout, "checked 1 digests and 3 log files") {
		t.Fatalf("verify = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCoffer(nil, "audit", "public-key", "--data", data)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("public-key = %d %q %q", r.code, r.stdout, r.stderr)
	}
	keep := filepath.Join(t.TempDir(), "audit.pub")
	os.WriteFile(keep, []byte(r.stdout), 0o644)

	r = runCoffer(nil, "audit", "tail", "--data", data, "--since", "2000-01-01", "--follow=false")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 10 || !strings.Contains(r.stdout, `"eventName":"BatchGetImage"`) {
		t.Fatalf("tail = %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Tamper: the report names the file, the exit status is 1; the JSON
	// report says the same.
	var victim string
	filepath.WalkDir(filepath.Join(data, "audit", "111122223333", "CloudTrail"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && victim == "" {
			victim = p
		}
		return nil
	})
	raw, _ := os.ReadFile(victim)
	os.WriteFile(victim, raw[:len(raw)-8], 0o600)
	r = runCoffer(nil, "audit", "verify", "--data", data, "--public-key", keep)
	if r.code != 1 || !strings.Contains(r.stdout, "truncated") || !strings.Contains(r.stdout, "first bad file: 111122223333/CloudTrail/") {
		t.Fatalf("verify after tampering = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCoffer(nil, "audit", "verify", "--data", data, "--json")
	if r.code != 1 || !strings.Contains(r.stdout, `"ok": false`) || !strings.Contains(r.stdout, `"Kind": "truncated"`) {
		t.Fatalf("verify --json = %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	for _, bad := range [][]string{
		{"audit"}, {"audit", "frobnicate"}, {"audit", "verify", "--from", "yesterday", "--data", data},
		{"audit", "verify", "--data", data, "extra"},
	} {
		if r := runCoffer(nil, bad...); r.code != 2 {
			t.Errorf("coffer %s = %d, want 2 (%s)", strings.Join(bad, " "), r.code, r.stderr)
		}
	}
	if r := runCoffer(nil, "audit", "public-key", "--data", t.TempDir()); r.code != 1 || !strings.Contains(r.stderr, "first start") {
		t.Errorf("public-key without a trail = %d %q", r.code, r.stderr)
	}
}

func TestParseWhen(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	cases := map[string]time.Time{
		"":                     {},
		"2026-03-01":           time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		"2026-03-01T10:30:00Z": time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC),
		"24h":                  now.Add(-24 * time.Hour),
	}
	for in, want := range cases {
		if got, err := parseWhen(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := parseWhen("-1h", now); err == nil {
		t.Error("a negative duration was accepted")
	}
}

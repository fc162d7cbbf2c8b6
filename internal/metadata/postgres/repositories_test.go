package postgres

import (
	"strings"
	"testing"

	"github.com/cofferhq/coffer/internal/metadata"
)

// TestRepositoryFixedFieldsTrigger: the database itself refuses an UPDATE
// that changes a repository's identity or encryption configuration (SPEC
// ENC-07), whatever code issues it; settings still change.
func TestRepositoryFixedFieldsTrigger(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	if err := s.CreateRepository(ctx, metadata.Repository{ID: "id1", Name: "app", Domain: "aes256",
		EncryptionType: metadata.EncryptionAES256, TagMutability: metadata.TagMutable}); err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{
		"id = 'id2'", "name = 'other'", "domain = 'id1'", "encryption_type = 'KMS'",
		"kms_key = 'arn:aws:kms:us-east-1:123456789012:key/k'", "created_at = created_at + 1",
	} {
		_, err := s.pool.Exec(ctx, `UPDATE repositories SET `+set+` WHERE id = 'id1'`)
		if err == nil || !strings.Contains(err.Error(), "ENC-07") {
			t.Errorf("UPDATE SET %s = %v, want the trigger's refusal", set, err)
		}
	}
	// Setting a fixed column to its own value, and the settings, are fine.
	if _, err := s.pool.Exec(ctx, `UPDATE repositories SET encryption_type = 'AES256', kms_key = '',
		tag_mutability = 'IMMUTABLE', scan_on_push = TRUE WHERE id = 'id1'`); err != nil {
		t.Fatalf("update of settings: %v", err)
	}
	got, err := s.GetRepository(ctx, "app")
	if err != nil || got.EncryptionType != metadata.EncryptionAES256 || got.TagMutability != metadata.TagImmutable || !got.ScanOnPush {
		t.Fatalf("after updates: %+v, %v", got, err)
	}
}

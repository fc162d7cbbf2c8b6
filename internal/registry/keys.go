package registry

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/cofferhq/coffer/internal/crypto/envelope"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/metadata"
)

// DataKeys issues and opens the per-object data keys of a repository's
// encryption configuration. Each encryption type is a key source behind this
// interface; the envelope format is the same for all (docs/envelope.md).
type DataKeys interface {
	// New returns fresh plaintext data keys and the header slots that carry
	// them wrapped, for a new object of repo whose identity is objectARN.
	New(ctx context.Context, repo metadata.Repository, objectARN string) ([]envelope.Slot, [][]byte, error)
	// Open unwraps the data keys of an object's header slots.
	Open(ctx context.Context, repo metadata.Repository, objectARN string, slots []envelope.Slot) ([][]byte, error)
}

// rootKeyID names the service root key in envelope slots.
const rootKeyID = "coffer:root"

// RootKeys is the key source of the AES256 encryption type (ECR's
// service-managed key, SPEC ENC-03): a fresh random data key per object,
// wrapped by the service root key under the encryption context
// {"aws:s3:arn": objectARN}, so a wrapped key only opens for its own object.
type RootKeys struct {
	Root *rootkey.Key
}

// New implements DataKeys.
func (k RootKeys) New(ctx context.Context, repo metadata.Repository, objectARN string) ([]envelope.Slot, [][]byte, error) {
	if repo.EncryptionType != metadata.EncryptionAES256 {
		return nil, nil, fmt.Errorf("%w: encryption type %s needs the KMS-encrypted repositories feature (issue #6)", ErrNotBuilt, repo.EncryptionType)
	}
	dk := make([]byte, 32)
	if _, err := rand.Read(dk); err != nil {
		return nil, nil, fmt.Errorf("generate data key: %w", err)
	}
	wrapped, err := k.Root.Wrap(dk, map[string]string{"aws:s3:arn": objectARN})
	if err != nil {
		return nil, nil, fmt.Errorf("wrap data key: %w", err)
	}
	return []envelope.Slot{{Source: envelope.SourceRoot, KeyID: rootKeyID, Wrapped: wrapped}}, [][]byte{dk}, nil
}

// Open implements DataKeys.
func (k RootKeys) Open(ctx context.Context, repo metadata.Repository, objectARN string, slots []envelope.Slot) ([][]byte, error) {
	if len(slots) != 1 || slots[0].Source != envelope.SourceRoot || slots[0].KeyID != rootKeyID {
		return nil, fmt.Errorf("%w: object is not under the service root key", ErrCorrupt)
	}
	dk, err := k.Root.Unwrap(slots[0].Wrapped, map[string]string{"aws:s3:arn": objectARN})
	if err != nil {
		return nil, fmt.Errorf("%w: data key did not unwrap for %s", ErrCorrupt, objectARN)
	}
	return [][]byte{dk}, nil
}

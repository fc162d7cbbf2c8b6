package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/crypto/envelope"
	"github.com/cofferhq/coffer/internal/kms"
	"github.com/cofferhq/coffer/internal/metadata"
)

// ErrKMS reports that the KMS refused a call the registry made for a KMS
// repository (a revoked grant, a disabled key, a key pending deletion...).
// It wraps the *kms.Error, whose code and message reach the client (ECR
// KmsException, OCI DENIED).
var ErrKMS = errors.New("the KMS refused the request")

// ECRServicePrincipal is the service name the registry calls KMS as when it
// uses its grants: CloudTrail's invokedBy.
const ECRServicePrincipal = "ecr.amazonaws.com"

// ECRViaService is the regional service principal of the registry: the
// kms:ViaService value of its calls and the grantee of the grants it holds
// on a repository's key (SPEC GRANT-01, KMS-07).
func ECRViaService(region string) string { return "ecr." + region + ".amazonaws.com" }

// kmsError wraps a KMS failure as ErrKMS.
func kmsError(err error) error {
	return fmt.Errorf("%w: %w", ErrKMS, err)
}

// KMSKeys is the key source of the KMS and KMS_DSSE encryption types (SPEC
// ENC-04/05, FLOW-03..07): every object's data key comes from
// GenerateDataKey under the repository's KMS key, with the encryption
// context {"aws:ecr:arn": repository ARN, "aws:s3:arn": object ARN} (SPEC
// CTX-02), and is opened with Decrypt under the same context. The registry
// calls KMS as the ECR service through the grants it holds on the key, so
// revoking a grant, disabling the key or scheduling its deletion stops the
// very next push or pull: no data key is cached. KMS_DSSE objects carry two
// independent data keys from two GenerateDataKey calls (ENC-05).
type KMSKeys struct {
	Client    kms.Client
	Region    string
	AccountID string
}

// caller is the registry service using its grants. The user whose request
// caused the call reaches the audit trail through the request ID the KMS
// event shares with the user's own request record.
func (k KMSKeys) caller() kms.Caller {
	return kms.Caller{
		Principal:  auth.Principal{Type: "AWSService", AccountID: k.AccountID, PrincipalID: ECRServicePrincipal},
		ViaService: ECRViaService(k.Region),
		InvokedBy:  ECRServicePrincipal,
	}
}

func (k KMSKeys) context(repo metadata.Repository, objectARN string) map[string]string {
	return map[string]string{
		"aws:ecr:arn": RepositoryARN(k.Region, k.AccountID, repo.Name),
		"aws:s3:arn":  objectARN,
	}
}

// layers is the number of data keys an object of repo carries.
func layers(repo metadata.Repository) (int, error) {
	switch repo.EncryptionType {
	case metadata.EncryptionKMS:
		return 1, nil
	case metadata.EncryptionKMSDSSE:
		return 2, nil
	}
	return 0, fmt.Errorf("KMSKeys: repository %s has encryption type %s", repo.Name, repo.EncryptionType)
}

// New implements DataKeys.
func (k KMSKeys) New(ctx context.Context, repo metadata.Repository, objectARN string) ([]envelope.Slot, [][]byte, error) {
	n, err := layers(repo)
	if err != nil {
		return nil, nil, err
	}
	if repo.KMSKey == "" {
		return nil, nil, fmt.Errorf("KMSKeys: repository %s has no KMS key", repo.Name)
	}
	ec := k.context(repo, objectARN)
	slots := make([]envelope.Slot, 0, n)
	keys := make([][]byte, 0, n)
	for range n {
		out, err := k.Client.GenerateDataKey(ctx, k.caller(), &kms.GenerateDataKeyInput{KeyId: repo.KMSKey, KeySpec: "AES_256", EncryptionContext: ec})
		if err != nil {
			for _, dk := range keys {
				clear(dk)
			}
			return nil, nil, kmsError(err)
		}
		slots = append(slots, envelope.Slot{Source: envelope.SourceKMS, KeyID: repo.KMSKey, Wrapped: out.CiphertextBlob})
		keys = append(keys, out.Plaintext)
	}
	return slots, keys, nil
}

// Open implements DataKeys. Every slot must name the repository's key: an
// object copied in from another repository does not open (its context
// names the other repository anyway).
func (k KMSKeys) Open(ctx context.Context, repo metadata.Repository, objectARN string, slots []envelope.Slot) ([][]byte, error) {
	n, err := layers(repo)
	if err != nil {
		return nil, err
	}
	if len(slots) != n {
		return nil, fmt.Errorf("%w: object has %d key slots, %s needs %d", ErrCorrupt, len(slots), repo.EncryptionType, n)
	}
	for _, s := range slots {
		if s.Source != envelope.SourceKMS || s.KeyID != repo.KMSKey {
			return nil, fmt.Errorf("%w: object is not under the repository's KMS key", ErrCorrupt)
		}
	}
	ec := k.context(repo, objectARN)
	keys := make([][]byte, 0, n)
	for _, s := range slots {
		out, err := k.Client.Decrypt(ctx, k.caller(), &kms.DecryptInput{KeyId: repo.KMSKey, CiphertextBlob: s.Wrapped, EncryptionContext: ec})
		if err != nil {
			for _, dk := range keys {
				clear(dk)
			}
			if errors.Is(err, kms.ErrInvalidCiphertext) {
				return nil, fmt.Errorf("%w: data key did not decrypt for %s: %w", ErrCorrupt, objectARN, err)
			}
			return nil, kmsError(err)
		}
		keys = append(keys, out.Plaintext)
	}
	return keys, nil
}

// EncryptionKeys routes each repository to the key source of its
// encryption type: AES256 to AES256 (RootKeys), KMS and KMS_DSSE to KMS
// (KMSKeys). A nil source refuses its types with ErrNotBuilt.
type EncryptionKeys struct {
	AES256 DataKeys
	KMS    DataKeys
}

func (e EncryptionKeys) route(repo metadata.Repository) (DataKeys, error) {
	var k DataKeys
	switch repo.EncryptionType {
	case metadata.EncryptionAES256, "":
		k = e.AES256
	case metadata.EncryptionKMS, metadata.EncryptionKMSDSSE:
		k = e.KMS
	}
	if k == nil {
		return nil, fmt.Errorf("%w: no key source for encryption type %s", ErrNotBuilt, repo.EncryptionType)
	}
	return k, nil
}

// New implements DataKeys.
func (e EncryptionKeys) New(ctx context.Context, repo metadata.Repository, objectARN string) ([]envelope.Slot, [][]byte, error) {
	k, err := e.route(repo)
	if err != nil {
		return nil, nil, err
	}
	return k.New(ctx, repo, objectARN)
}

// Open implements DataKeys.
func (e EncryptionKeys) Open(ctx context.Context, repo metadata.Repository, objectARN string, slots []envelope.Slot) ([][]byte, error) {
	k, err := e.route(repo)
	if err != nil {
		return nil, err
	}
	return k.Open(ctx, repo, objectARN, slots)
}

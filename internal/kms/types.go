package kms

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// The request and response shapes of the KMS JSON API, named and spelled as
// the botocore model kms/2014-11-01 has them. The HTTP handler decodes
// requests into them and encodes responses from them, and the Client seam
// uses the same types, so the built-in KMS and a remote one are called
// alike. Blobs are []byte (base64 on the wire); optional scalars the API
// distinguishes from their zero value are pointers.

// Timestamp is a time as the AWS JSON protocol writes it: seconds since the
// epoch, with a fraction.
type Timestamp struct{ time.Time }

// NewTimestamp returns t as a *Timestamp, or nil for the zero time.
func NewTimestamp(t time.Time) *Timestamp {
	if t.IsZero() {
		return nil
	}
	return &Timestamp{t}
}

// MarshalJSON writes epoch seconds with millisecond precision.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	ms := t.UnixMilli()
	return strconv.AppendFloat(nil, float64(ms)/1000, 'f', -1, 64), nil
}

// UnmarshalJSON reads epoch seconds.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e12 {
		return fmt.Errorf("timestamp %s is not epoch seconds", b)
	}
	t.Time = time.UnixMilli(int64(math.Round(f * 1000))).UTC()
	return nil
}

var _ json.Marshaler = Timestamp{}

// Tag is a key tag.
type Tag struct {
	TagKey   string
	TagValue string
}

// KeyMetadata describes a KMS key (DescribeKey, CreateKey).
type KeyMetadata struct {
	AWSAccountId                string
	KeyId                       string
	Arn                         string
	CreationDate                *Timestamp `json:",omitempty"`
	Enabled                     bool
	Description                 string
	KeyUsage                    string
	KeyState                    string
	DeletionDate                *Timestamp `json:",omitempty"`
	Origin                      string
	KeyManager                  string
	CustomerMasterKeySpec       string
	KeySpec                     string
	EncryptionAlgorithms        []string
	MultiRegion                 bool
	PendingDeletionWindowInDays *int32 `json:",omitempty"`
	CurrentKeyMaterialId        string `json:",omitempty"`
}

// GrantConstraints are a grant's encryption context constraints.
type GrantConstraints struct {
	EncryptionContextSubset map[string]string `json:",omitempty"`
	EncryptionContextEquals map[string]string `json:",omitempty"`
}

// GrantListEntry is one grant (ListGrants, ListRetirableGrants).
type GrantListEntry struct {
	KeyId             string
	GrantId           string
	Name              string            `json:",omitempty"`
	CreationDate      *Timestamp        `json:",omitempty"`
	GranteePrincipal  string            `json:",omitempty"`
	RetiringPrincipal string            `json:",omitempty"`
	IssuingAccount    string            `json:",omitempty"`
	Operations        []string          `json:",omitempty"`
	Constraints       *GrantConstraints `json:",omitempty"`
}

// RecipientInfo is the attested-enclave recipient of the model. Coffer does
// not support it; a request that sets it is refused.
type RecipientInfo struct {
	KeyEncryptionAlgorithm string `json:",omitempty"`
	AttestationDocument    []byte `json:",omitempty"`
}

// CreateKeyInput is CreateKey's request.
type CreateKeyInput struct {
	Policy                         *string `json:",omitempty"`
	Description                    *string `json:",omitempty"`
	KeyUsage                       string  `json:",omitempty"`
	CustomerMasterKeySpec          string  `json:",omitempty"`
	KeySpec                        string  `json:",omitempty"`
	Origin                         string  `json:",omitempty"`
	CustomKeyStoreId               string  `json:",omitempty"`
	BypassPolicyLockoutSafetyCheck bool    `json:",omitempty"`
	Tags                           []Tag   `json:",omitempty"`
	MultiRegion                    *bool   `json:",omitempty"`
	XksKeyId                       string  `json:",omitempty"`
}

// CreateKeyOutput is CreateKey's response.
type CreateKeyOutput struct{ KeyMetadata *KeyMetadata }

// DescribeKeyInput is DescribeKey's request.
type DescribeKeyInput struct {
	KeyId       string
	GrantTokens []string `json:",omitempty"`
}

// DescribeKeyOutput is DescribeKey's response.
type DescribeKeyOutput struct{ KeyMetadata *KeyMetadata }

// ListKeysInput is ListKeys' request.
type ListKeysInput struct {
	Limit  *int32  `json:",omitempty"`
	Marker *string `json:",omitempty"`
}

// KeyListEntry is one key of ListKeys.
type KeyListEntry struct {
	KeyId  string
	KeyArn string
}

// ListKeysOutput is ListKeys' response.
type ListKeysOutput struct {
	Keys       []KeyListEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

// UpdateKeyDescriptionInput is UpdateKeyDescription's request.
type UpdateKeyDescriptionInput struct {
	KeyId       string
	Description *string
}

// KeyIDInput is the request of the operations that take only a KeyId:
// EnableKey, DisableKey, CancelKeyDeletion, DisableKeyRotation,
// GetKeyRotationStatus, RotateKeyOnDemand.
type KeyIDInput struct{ KeyId string }

// Empty is the response of operations that return nothing.
type Empty struct{}

// ScheduleKeyDeletionInput is ScheduleKeyDeletion's request.
type ScheduleKeyDeletionInput struct {
	KeyId               string
	PendingWindowInDays *int32 `json:",omitempty"`
}

// ScheduleKeyDeletionOutput is ScheduleKeyDeletion's response.
type ScheduleKeyDeletionOutput struct {
	KeyId               string
	DeletionDate        *Timestamp
	KeyState            string
	PendingWindowInDays int32
}

// KeyIDOutput is the response of CancelKeyDeletion and RotateKeyOnDemand.
type KeyIDOutput struct{ KeyId string }

// EnableKeyRotationInput is EnableKeyRotation's request.
type EnableKeyRotationInput struct {
	KeyId                string
	RotationPeriodInDays *int32 `json:",omitempty"`
}

// GetKeyRotationStatusOutput is GetKeyRotationStatus' response.
type GetKeyRotationStatusOutput struct {
	KeyRotationEnabled   bool
	KeyId                string
	RotationPeriodInDays *int32     `json:",omitempty"`
	NextRotationDate     *Timestamp `json:",omitempty"`
}

// ListKeyRotationsInput is ListKeyRotations' request.
type ListKeyRotationsInput struct {
	KeyId              string
	IncludeKeyMaterial string  `json:",omitempty"`
	Limit              *int32  `json:",omitempty"`
	Marker             *string `json:",omitempty"`
}

// RotationsListEntry is one rotation (or, with ALL_KEY_MATERIAL, one key
// material version).
type RotationsListEntry struct {
	KeyId            string
	KeyMaterialId    string     `json:",omitempty"`
	KeyMaterialState string     `json:",omitempty"`
	RotationDate     *Timestamp `json:",omitempty"`
	RotationType     string     `json:",omitempty"`
}

// ListKeyRotationsOutput is ListKeyRotations' response.
type ListKeyRotationsOutput struct {
	Rotations  []RotationsListEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

// AliasInput is the request of CreateAlias and UpdateAlias.
type AliasInput struct {
	AliasName   string
	TargetKeyId string
}

// DeleteAliasInput is DeleteAlias' request.
type DeleteAliasInput struct{ AliasName string }

// ListAliasesInput is ListAliases' request.
type ListAliasesInput struct {
	KeyId  string  `json:",omitempty"`
	Limit  *int32  `json:",omitempty"`
	Marker *string `json:",omitempty"`
}

// AliasListEntry is one alias.
type AliasListEntry struct {
	AliasName       string
	AliasArn        string
	TargetKeyId     string     `json:",omitempty"`
	CreationDate    *Timestamp `json:",omitempty"`
	LastUpdatedDate *Timestamp `json:",omitempty"`
}

// ListAliasesOutput is ListAliases' response.
type ListAliasesOutput struct {
	Aliases    []AliasListEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

// EncryptInput is Encrypt's request.
type EncryptInput struct {
	KeyId               string
	Plaintext           []byte
	EncryptionContext   map[string]string `json:",omitempty"`
	GrantTokens         []string          `json:",omitempty"`
	EncryptionAlgorithm string            `json:",omitempty"`
	DryRun              *bool             `json:",omitempty"`
}

// EncryptOutput is Encrypt's response.
type EncryptOutput struct {
	CiphertextBlob      []byte
	KeyId               string
	EncryptionAlgorithm string
}

// DecryptInput is Decrypt's request.
type DecryptInput struct {
	CiphertextBlob      []byte
	EncryptionContext   map[string]string `json:",omitempty"`
	GrantTokens         []string          `json:",omitempty"`
	KeyId               string            `json:",omitempty"`
	EncryptionAlgorithm string            `json:",omitempty"`
	Recipient           *RecipientInfo    `json:",omitempty"`
	DryRun              *bool             `json:",omitempty"`
	DryRunModifiers     []string          `json:",omitempty"`
}

// DecryptOutput is Decrypt's response.
type DecryptOutput struct {
	KeyId               string
	Plaintext           []byte
	EncryptionAlgorithm string
	KeyMaterialId       string `json:",omitempty"`
}

// ReEncryptInput is ReEncrypt's request.
type ReEncryptInput struct {
	CiphertextBlob                 []byte
	SourceEncryptionContext        map[string]string `json:",omitempty"`
	SourceKeyId                    string            `json:",omitempty"`
	DestinationKeyId               string
	DestinationEncryptionContext   map[string]string `json:",omitempty"`
	SourceEncryptionAlgorithm      string            `json:",omitempty"`
	DestinationEncryptionAlgorithm string            `json:",omitempty"`
	GrantTokens                    []string          `json:",omitempty"`
	DryRun                         *bool             `json:",omitempty"`
	DryRunModifiers                []string          `json:",omitempty"`
}

// ReEncryptOutput is ReEncrypt's response.
type ReEncryptOutput struct {
	CiphertextBlob                 []byte
	SourceKeyId                    string
	KeyId                          string
	SourceEncryptionAlgorithm      string
	DestinationEncryptionAlgorithm string
	SourceKeyMaterialId            string `json:",omitempty"`
	DestinationKeyMaterialId       string `json:",omitempty"`
}

// GenerateDataKeyInput is the request of GenerateDataKey and
// GenerateDataKeyWithoutPlaintext (which has no Recipient).
type GenerateDataKeyInput struct {
	KeyId             string
	EncryptionContext map[string]string `json:",omitempty"`
	NumberOfBytes     *int32            `json:",omitempty"`
	KeySpec           string            `json:",omitempty"`
	GrantTokens       []string          `json:",omitempty"`
	Recipient         *RecipientInfo    `json:",omitempty"`
	DryRun            *bool             `json:",omitempty"`
}

// GenerateDataKeyOutput is GenerateDataKey's response.
// GenerateDataKeyWithoutPlaintext leaves Plaintext nil.
type GenerateDataKeyOutput struct {
	CiphertextBlob []byte
	Plaintext      []byte `json:",omitempty"`
	KeyId          string
	KeyMaterialId  string `json:",omitempty"`
}

// GenerateRandomInput is GenerateRandom's request.
type GenerateRandomInput struct {
	NumberOfBytes    *int32         `json:",omitempty"`
	CustomKeyStoreId string         `json:",omitempty"`
	Recipient        *RecipientInfo `json:",omitempty"`
}

// GenerateRandomOutput is GenerateRandom's response.
type GenerateRandomOutput struct{ Plaintext []byte }

// CreateGrantInput is CreateGrant's request.
type CreateGrantInput struct {
	KeyId             string
	GranteePrincipal  string
	RetiringPrincipal string            `json:",omitempty"`
	Operations        []string          `json:",omitempty"`
	Constraints       *GrantConstraints `json:",omitempty"`
	GrantTokens       []string          `json:",omitempty"`
	Name              string            `json:",omitempty"`
	DryRun            *bool             `json:",omitempty"`
}

// CreateGrantOutput is CreateGrant's response.
type CreateGrantOutput struct {
	GrantToken string
	GrantId    string
}

// ListGrantsInput is ListGrants' request.
type ListGrantsInput struct {
	Limit            *int32  `json:",omitempty"`
	Marker           *string `json:",omitempty"`
	KeyId            string
	GrantId          string `json:",omitempty"`
	GranteePrincipal string `json:",omitempty"`
}

// ListGrantsOutput is the response of ListGrants and ListRetirableGrants.
type ListGrantsOutput struct {
	Grants     []GrantListEntry
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

// ListRetirableGrantsInput is ListRetirableGrants' request.
type ListRetirableGrantsInput struct {
	Limit             *int32  `json:",omitempty"`
	Marker            *string `json:",omitempty"`
	RetiringPrincipal string
}

// RetireGrantInput is RetireGrant's request.
type RetireGrantInput struct {
	GrantToken string `json:",omitempty"`
	KeyId      string `json:",omitempty"`
	GrantId    string `json:",omitempty"`
	DryRun     *bool  `json:",omitempty"`
}

// RevokeGrantInput is RevokeGrant's request.
type RevokeGrantInput struct {
	KeyId   string
	GrantId string
	DryRun  *bool `json:",omitempty"`
}

// GetKeyPolicyInput is GetKeyPolicy's request.
type GetKeyPolicyInput struct {
	KeyId      string
	PolicyName string `json:",omitempty"`
}

// GetKeyPolicyOutput is GetKeyPolicy's response.
type GetKeyPolicyOutput struct {
	Policy     string
	PolicyName string
}

// PutKeyPolicyInput is PutKeyPolicy's request.
type PutKeyPolicyInput struct {
	KeyId                          string
	PolicyName                     string `json:",omitempty"`
	Policy                         string
	BypassPolicyLockoutSafetyCheck bool `json:",omitempty"`
}

// ListKeyPoliciesInput is ListKeyPolicies' request.
type ListKeyPoliciesInput struct {
	KeyId  string
	Limit  *int32  `json:",omitempty"`
	Marker *string `json:",omitempty"`
}

// ListKeyPoliciesOutput is ListKeyPolicies' response.
type ListKeyPoliciesOutput struct {
	PolicyNames []string
	NextMarker  string `json:",omitempty"`
	Truncated   bool
}

// TagResourceInput is TagResource's request.
type TagResourceInput struct {
	KeyId string
	Tags  []Tag
}

// UntagResourceInput is UntagResource's request.
type UntagResourceInput struct {
	KeyId   string
	TagKeys []string
}

// ListResourceTagsInput is ListResourceTags' request.
type ListResourceTagsInput struct {
	KeyId  string
	Limit  *int32  `json:",omitempty"`
	Marker *string `json:",omitempty"`
}

// ListResourceTagsOutput is ListResourceTags' response.
type ListResourceTagsOutput struct {
	Tags       []Tag
	NextMarker string `json:",omitempty"`
	Truncated  bool
}

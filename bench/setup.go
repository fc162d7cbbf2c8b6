package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/google/go-containerregistry/pkg/authn"
)

// Setup hooks of the Coffer variants: what an operator does through the AWS
// APIs before the first push. They sign as the administrator Coffer is
// started with (adminEnv).

// The administrator key of every variant: throwaway values for a loopback
// server whose data directory is deleted after the round.
const (
	benchAdminKeyID  = "AKIABENCHADMIN000001"
	benchAdminSecret = "bench-admin-secret-0123456789abcdefghijk"
	benchUser        = "bench"
	powerUserPolicy  = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser"
)

var adminEnv = []string{
	"COFFER_ADMIN_ACCESS_KEY_ID=" + benchAdminKeyID,
	"COFFER_ADMIN_SECRET_ACCESS_KEY=" + benchAdminSecret,
}

func adminCreds() aws.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(benchAdminKeyID, benchAdminSecret, "")
}

func endpoint(s *server) *string { return aws.String("http://" + s.addr) }

// createRepositories creates repos with ECR's CreateRepository, encrypted
// as enc (with kmsKey for the KMS types).
func createRepositories(ctx context.Context, s *server, region string, repos []string, enc ecrtypes.EncryptionType, kmsKey string) error {
	ec := ecr.New(ecr.Options{Region: region, BaseEndpoint: endpoint(s), Credentials: adminCreds()})
	for _, repo := range repos {
		cfg := &ecrtypes.EncryptionConfiguration{EncryptionType: enc}
		if kmsKey != "" {
			cfg.KmsKey = aws.String(kmsKey)
		}
		if _, err := ec.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String(repo), EncryptionConfiguration: cfg}); err != nil {
			return fmt.Errorf("ecr CreateRepository %s: %w", repo, err)
		}
	}
	return nil
}

// iamUserLogin is the setup of a CI pusher on ECR: the administrator creates
// the repositories and an IAM user with the AmazonEC2ContainerRegistryPowerUser
// managed policy (which does not allow CreateRepository) and an access key;
// the user gets a registry token with GetAuthorizationToken (`aws ecr
// get-login-password`) and sends Basic AWS:<token>. Every /v2/ request then
// verifies the token and evaluates the user's policies.
func iamUserLogin(ctx context.Context, s *server, repos []string) (access, error) {
	const region = "us-east-1"
	if err := createRepositories(ctx, s, region, repos, ecrtypes.EncryptionTypeAes256, ""); err != nil {
		return access{}, err
	}
	ic := iam.New(iam.Options{Region: region, BaseEndpoint: endpoint(s), Credentials: adminCreds()})
	if _, err := ic.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(benchUser)}); err != nil {
		return access{}, fmt.Errorf("iam CreateUser: %w", err)
	}
	if _, err := ic.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String(benchUser), PolicyArn: aws.String(powerUserPolicy)}); err != nil {
		return access{}, fmt.Errorf("iam AttachUserPolicy: %w", err)
	}
	key, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(benchUser)})
	if err != nil {
		return access{}, fmt.Errorf("iam CreateAccessKey: %w", err)
	}
	user := credentials.NewStaticCredentialsProvider(aws.ToString(key.AccessKey.AccessKeyId), aws.ToString(key.AccessKey.SecretAccessKey), "")
	ec := ecr.New(ecr.Options{Region: region, BaseEndpoint: endpoint(s), Credentials: user})
	out, err := ec.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return access{}, fmt.Errorf("ecr GetAuthorizationToken: %w", err)
	}
	if len(out.AuthorizationData) == 0 {
		return access{}, errors.New("ecr GetAuthorizationToken: no authorization data")
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.AuthorizationData[0].AuthorizationToken))
	if err != nil {
		return access{}, fmt.Errorf("ecr GetAuthorizationToken: %w", err)
	}
	u, pass, ok := strings.Cut(string(raw), ":")
	if !ok || u != "AWS" {
		return access{}, errors.New("ecr GetAuthorizationToken: token is not AWS:<password>")
	}
	return access{Auth: &authn.Basic{Username: "AWS", Password: pass}}, nil
}

// kmsRepositories returns the setup of a KMS-encrypted variant: a customer
// key in the built-in KMS (default key policy), then the repositories with
// encryptionConfiguration {enc, kmsKey}. The client stays anonymous
// (--insecure-allow-anonymous), so the figures differ from the AES256 row
// by the encryption type alone.
func kmsRepositories(enc ecrtypes.EncryptionType, region string) func(context.Context, *server, []string) (access, error) {
	return func(ctx context.Context, s *server, repos []string) (access, error) {
		kc := kms.New(kms.Options{Region: region, BaseEndpoint: endpoint(s), Credentials: adminCreds()})
		key, err := kc.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("coffer-bench")})
		if err != nil {
			return access{}, fmt.Errorf("kms CreateKey: %w", err)
		}
		if err := createRepositories(ctx, s, region, repos, enc, aws.ToString(key.KeyMetadata.Arn)); err != nil {
			return access{}, err
		}
		return access{}, nil
	}
}

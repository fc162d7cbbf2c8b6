package main

import (
	"context"

	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/google/go-containerregistry/pkg/authn"
)

// variant is one configuration of Coffer measured side by side with the
// peer. Each names what it needs; one whose needs are not built yet is
// printed as "not available yet (issue #N)" and never measured.
//
// To add one: append it to variants with the extra serve flags and
// environment it needs and, if the repository or the credentials must exist
// before the first push, a Setup hook; set Available once the issue has
// landed. Everything else (rounds, phases, table, JSON) follows.
type variant struct {
	Name      string   // short, for the table: "AES256", "KMS", ...
	Needs     string   // what it needs from Coffer, for the report and the JSON
	Issue     int      // the issue that builds what it needs
	Available bool     // built: measure it
	ServeArgs []string // extra `coffer serve` flags
	Env       []string // extra environment (KEY=value)
	// Backends, if set, starts what each of the variant's servers runs on
	// (PostgreSQL and versitygw, backends.go) before it, and stops it
	// after; it returns extra serve flags and environment.
	Backends func(ctx context.Context) (args, env []string, stop func(), err error)
	// Setup runs once the server is ready, before any phase: create a KMS
	// key, the repositories (full names, e.g. "bench/big") with an
	// encryption configuration, an IAM user... It returns how the client
	// reaches the server.
	Setup func(ctx context.Context, s *server, repos []string) (access, error)
}

// access is how the client reaches a registry: credentials and the
// repository namespace under which the images are pushed.
type access struct {
	Auth      authn.Authenticator // nil: anonymous
	Namespace string              // "" means "bench"
}

func (a access) namespace() string {
	if a.Namespace == "" {
		return "bench"
	}
	return a.Namespace
}

func (a access) auth() authn.Authenticator {
	if a.Auth == nil {
		return authn.Anonymous
	}
	return a.Auth
}

// variants is the list of Coffer configurations, in table order. Every one
// includes the CloudTrail-format audit trail (issue #8): since it landed it
// records every request and cannot be turned off, so there is no
// "without audit" row; compare with an older build with -baseline.
var variants = []variant{
	{
		// Anonymous, like the peer (distribution has no auth configured):
		// the data path, encryption and audit.
		Name:      "AES256",
		Needs:     "the registry core: create-on-push repositories under ECR's service-managed key; anonymous, loopback only",
		Issue:     2,
		Available: true,
		ServeArgs: []string{"--insecure-allow-anonymous"},
	},
	{
		// What a CI pusher does against ECR: an IAM user with the
		// PowerUser managed policy, docker login token, every request
		// authenticated and decided by IAM.
		Name:      "AES256 + auth",
		Needs:     "identity and access: IAM users and policies, GetAuthorizationToken, Basic AWS:<token> on /v2/; CreateRepository",
		Issue:     3,
		Available: true,
		Env:       adminEnv,
		Setup:     iamUserLogin,
	},
	{
		// A customer key in the built-in KMS; each stored object gets its
		// data key from GenerateDataKey through the registry's grant.
		Name:      "KMS",
		Needs:     "KMS-encrypted repositories (issue #6), the built-in KMS (issue #5), CreateRepository (issue #4)",
		Issue:     6,
		Available: true,
		ServeArgs: []string{"--insecure-allow-anonymous"},
		Env:       adminEnv,
		Setup:     kmsRepositories(ecrtypes.EncryptionTypeKms, "us-east-1"),
	},
	{
		// Two envelopes, two data keys; DSSE is allowed only in the
		// aws-us-gov partition (SPEC ENC-06).
		Name:      "KMS_DSSE",
		Needs:     "dual-layer KMS encryption of issue #6, in region us-gov-west-1",
		Issue:     6,
		Available: true,
		ServeArgs: []string{"--insecure-allow-anonymous", "--region", "us-gov-west-1"},
		Env:       adminEnv,
		Setup:     kmsRepositories(ecrtypes.EncryptionTypeKmsDsse, "us-gov-west-1"),
	},
	{
		// The first variant's data path on the scale-out backends: the
		// harness starts a fresh PostgreSQL and versitygw on loopback for
		// each server (backends.go). Their CPU and memory are not in the
		// server's figures.
		Name:      "AES256 on PostgreSQL + S3",
		Needs:     "PostgreSQL metadata and S3-compatible blob storage selectable in the configuration (scale-out)",
		Issue:     9,
		Available: true,
		ServeArgs: []string{"--insecure-allow-anonymous"},
		Backends:  postgresS3,
	},
}

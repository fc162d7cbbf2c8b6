package migrate_test

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/metadata/postgres"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
	"github.com/cofferhq/coffer/internal/migrate"
	"github.com/cofferhq/coffer/internal/server"
	"github.com/cofferhq/coffer/internal/storage"
)

const (
	adminID     = "AKIAMIGRATEADMIN0001"
	adminSecret = "migrate-admin-secret-0123456789abcdef"
)

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

// TestTablesCoverSchema fails when a migration adds a table that
// migrate.Tables does not copy, in either store.
func TestTablesCoverSchema(t *testing.T) {
	ctx := context.Background()
	want := slices.Sorted(slices.Values(migrate.Tables))
	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "coffer.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Tables(ctx); err != nil || !slices.Equal(got, want) {
		t.Errorf("SQLite tables %v (%v); migrate.Tables %v: add the new table to migrate.Tables, in foreign-key order", got, err, want)
	}
	p, err := postgres.Open(ctx, postgres.Config{DSN: targetConfig(t, t.TempDir()).MetadataDSN})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got, err := p.Tables(ctx); err != nil || !slices.Equal(got, want) {
		t.Errorf("PostgreSQL tables %v (%v); migrate.Tables %v", got, err, want)
	}
}

// serve opens cfg's deployment behind httptest.
func serve(t *testing.T, cfg config.Config) (*httptest.Server, func()) {
	t.Helper()
	app, err := server.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	srv := httptest.NewServer(app.Handler())
	return srv, func() {
		srv.Close()
		if err := app.Close(); err != nil {
			t.Error(err)
		}
	}
}

// sourceConfig is a single-node deployment in a new data directory.
func sourceConfig(t *testing.T) config.Config {
	cfg := config.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.CreateOnPush = true
	cfg.AdminAccessKeyID, cfg.AdminSecretAccessKey = adminID, adminSecret
	return cfg
}

type clients struct {
	ecr  *ecr.Client
	kms  *awskms.Client
	iam  *iam.Client
	auth remote.Option
	host string
}

func newClients(t *testing.T, srv *httptest.Server) clients {
	t.Helper()
	creds := credentials.NewStaticCredentialsProvider(adminID, adminSecret, "")
	c := clients{
		ecr:  ecr.New(ecr.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: creds}),
		kms:  awskms.New(awskms.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: creds}),
		iam:  iam.New(iam.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: creds}),
		host: strings.TrimPrefix(srv.URL, "http://"),
	}
	out, err := c.ecr.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatalf("GetAuthorizationToken: %v", err)
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.AuthorizationData[0].AuthorizationToken))
	if err != nil {
		t.Fatal(err)
	}
	_, pass, _ := strings.Cut(string(raw), ":")
	c.auth = remote.WithAuth(&authn.Basic{Username: "AWS", Password: pass})
	return c
}

func (c clients) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(c.host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// openSides opens the source (SQLite and the filesystem) and the target
// (PostgreSQL and S3) for migrate.Run.
func openSides(t *testing.T, src, dst config.Config) migrate.Config {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: server.SQLitePath(src)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	sd, err := server.OpenDriver(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	store, err := server.OpenStore(ctx, dst, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	td, err := server.OpenDriver(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	return migrate.Config{Source: s, SourceDriver: sd, Target: store.(*postgres.Store), TargetDriver: td}
}

const pullPolicy = `{"Version":"2012-10-17","Statement":[{"Sid":"ci","Effect":"Allow",` +
	`"Principal":{"AWS":"arn:aws:iam::%s:user/ci"},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}`

// TestMigrateServer builds a single-node deployment through a real server
// (an image in an AES256 repository and one in a KMS repository, an IAM
// user with a key, a repository policy), migrates it into PostgreSQL and
// versitygw with verification, then serves the target with only the root
// key copied over: the images pull with their digests verified, the user's
// key works and the policy is there.
func TestMigrateServer(t *testing.T) {
	ctx := context.Background()
	src := sourceConfig(t)
	srv, closeSrc := serve(t, src)
	c := newClients(t, srv)

	images := map[string]v1.Image{}
	push := func(repo string) {
		img, err := random.Image(32<<10, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(c.ref(t, repo+":v1"), img, c.auth); err != nil {
			t.Fatalf("push %s: %v", repo, err)
		}
		images[repo] = img
	}
	push("team/app")
	key, err := c.kms.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String("repository key")})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	_, err = c.ecr.CreateRepository(ctx, &ecr.CreateRepositoryInput{RepositoryName: aws.String("secure/app"),
		EncryptionConfiguration: &ecrtypes.EncryptionConfiguration{EncryptionType: ecrtypes.EncryptionTypeKms, KmsKey: key.KeyMetadata.Arn}})
	if err != nil {
		t.Fatalf("CreateRepository: %v", err)
	}
	push("secure/app")
	if _, err := c.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("ci")}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	ak, err := c.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("ci")})
	if err != nil {
		t.Fatalf("CreateAccessKey: %v", err)
	}
	repo, err := c.ecr.DescribeRepositories(ctx, &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"team/app"}})
	if err != nil {
		t.Fatal(err)
	}
	policy := strings.Replace(pullPolicy, "%s", aws.ToString(repo.Repositories[0].RegistryId), 1)
	if _, err := c.ecr.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{RepositoryName: aws.String("team/app"), PolicyText: aws.String(policy)}); err != nil {
		t.Fatalf("SetRepositoryPolicy: %v", err)
	}
	closeSrc()

	// The target: a new data directory holding only the root key.
	dst := targetConfig(t, t.TempDir())
	rk, err := os.ReadFile(src.RootKeyPath())
	if err == nil {
		err = os.WriteFile(dst.RootKeyPath(), rk, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
	mc := openSides(t, src, dst)
	mc.Verify = true
	rep, err := migrate.Run(ctx, mc)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if rep.Objects == 0 || rep.Copied != rep.Objects || rep.Verified != rep.Objects || rep.Rows["manifests"] != 2 || rep.AlreadyLoaded {
		t.Errorf("report %+v; want every object copied and verified, 2 manifests", rep)
	}
	// A second run only verifies.
	again, err := migrate.Run(ctx, mc)
	if err != nil || !again.AlreadyLoaded || again.Copied != 0 || again.Skipped != rep.Objects {
		t.Errorf("second run: %+v, %v; want nothing copied, metadata already loaded", again, err)
	}
	mc.Target.(*postgres.Store).Close()

	srv, closeDst := serve(t, dst)
	defer closeDst()
	c = newClients(t, srv)
	for repo, img := range images {
		got, err := remote.Image(c.ref(t, repo+":v1"), c.auth)
		if err != nil {
			t.Fatalf("pull %s from the target: %v", repo, err)
		}
		want, _ := img.Digest()
		if d, err := got.Digest(); err != nil || d != want {
			t.Errorf("%s: digest %v (%v), want %v", repo, d, err, want)
		}
		if err := validate.Image(got); err != nil {
			t.Errorf("%s: %v", repo, err)
		}
	}
	user := sts.New(sts.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider(aws.ToString(ak.AccessKey.AccessKeyId), aws.ToString(ak.AccessKey.SecretAccessKey), "")})
	id, err := user.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || !strings.HasSuffix(aws.ToString(id.Arn), ":user/ci") {
		t.Errorf("the user's key on the target: %v, %v", id, err)
	}
	got, err := c.ecr.GetRepositoryPolicy(ctx, &ecr.GetRepositoryPolicyInput{RepositoryName: aws.String("team/app")})
	if err != nil || !strings.Contains(aws.ToString(got.PolicyText), ":user/ci") {
		t.Errorf("repository policy on the target: %v, %v", got, err)
	}
}

// failingDriver fails every Commit after the first n.
type failingDriver struct {
	storage.Driver
	left atomic.Int64
}

var errInterrupted = errors.New("interrupted")

type failingWriter struct {
	storage.Writer
	d *failingDriver
}

func (d *failingDriver) Writer(ctx context.Context, key string) (storage.Writer, error) {
	w, err := d.Driver.Writer(ctx, key)
	if err != nil {
		return nil, err
	}
	return failingWriter{Writer: w, d: d}, nil
}

func (w failingWriter) Commit(ctx context.Context) error {
	if w.d.left.Add(-1) < 0 {
		w.Writer.Cancel(ctx)
		return errInterrupted
	}
	return w.Writer.Commit(ctx)
}

// TestResume interrupts a migration after a few objects: the target's
// metadata stays empty, a second run copies only the rest and finishes. A
// target holding another deployment is refused.
func TestResume(t *testing.T) {
	ctx := context.Background()
	src := sourceConfig(t)
	src.InsecureAllowAnonymous = true
	srv, closeSrc := serve(t, src)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, repo := range []string{"a/one", "b/two", "c/three"} {
		img, err := random.Image(8<<10, 3)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := name.ParseReference(host+"/"+repo+":v1", name.Insecure)
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
	}
	closeSrc()

	dst := targetConfig(t, t.TempDir())
	mc := openSides(t, src, dst)
	real := mc.TargetDriver
	fd := &failingDriver{Driver: real}
	fd.left.Store(5)
	mc.TargetDriver = fd
	mc.Workers = 1
	_, err := migrate.Run(ctx, mc)
	if !errors.Is(err, errInterrupted) {
		t.Fatalf("interrupted run: %v; want the interruption", err)
	}
	for _, table := range migrate.Tables {
		if n, err := mc.Target.CountRows(ctx, table); err != nil || n != 0 {
			t.Errorf("after the interruption the target's %s has %d rows (%v); want none", table, n, err)
		}
	}
	mc.TargetDriver = real
	rep, err := migrate.Run(ctx, mc)
	if err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	if rep.Skipped != 5 || rep.Copied != rep.Objects-5 || rep.Rows["tags"] != 3 {
		t.Errorf("resumed run %+v; want 5 objects skipped, the rest copied, 3 tags", rep)
	}

	// An object of the right size but other bytes: kept without Verify,
	// copied again with it.
	var victim storage.Info
	if err := mc.SourceDriver.Walk(ctx, "manifests/", func(i storage.Info) error { victim = i; return nil }); err != nil || victim.Key == "" {
		t.Fatalf("no manifest object: %v", err)
	}
	w, err := real.Writer(ctx, victim.Key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, victim.Size)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, err := migrate.Run(ctx, mc); err != nil || rep.Copied != 0 || !rep.AlreadyLoaded {
		t.Errorf("run without Verify: %+v, %v; want nothing copied", rep, err)
	}
	mc.Verify = true
	if rep, err := migrate.Run(ctx, mc); err != nil || rep.Copied != 1 || rep.Verified != rep.Objects {
		t.Errorf("run with Verify: %+v, %v; want the altered object copied again, every object verified", rep, err)
	}

	// Another deployment into the same target: refused, nothing written.
	other := sourceConfig(t)
	_, closeOther := serve(t, other)
	closeOther()
	oc := openSides(t, other, dst)
	if _, err := migrate.Run(ctx, oc); !errors.Is(err, migrate.ErrOtherDeployment) {
		t.Errorf("another deployment into the target: %v; want ErrOtherDeployment", err)
	}
}

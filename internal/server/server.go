// Package server wires Coffer's components together and runs the listener:
// it opens the data directory (root key, metadata, blob storage), builds the
// request pipeline, and shuts down gracefully.
//
// Data directory layout:
//
//	<data>/root.key      service root key, 0600 (unless supplied by the operator)
//	<data>/coffer.db     SQLite metadata (WAL), unless metadata_dsn names PostgreSQL
//	<data>/blobs/        encrypted objects: layers/..., manifests/... (unless storage is s3)
//	<data>/audit/        the CloudTrail-format audit trail, its digests and signing key
//	<data>/tls/          the private CA and endpoint certificates, when generated
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/auth/sigv4"
	"github.com/cofferhq/coffer/internal/authz"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/ecrapi"
	"github.com/cofferhq/coffer/internal/endpoint"
	"github.com/cofferhq/coffer/internal/gc"
	"github.com/cofferhq/coffer/internal/iam"
	"github.com/cofferhq/coffer/internal/kms"
	"github.com/cofferhq/coffer/internal/lifecycle/runner"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/cache"
	"github.com/cofferhq/coffer/internal/oci"
	"github.com/cofferhq/coffer/internal/registry"
)

// Settings keys kept in the metadata store.
const (
	settingAccountID    = "account_id"
	settingRootKeyCheck = "root_key_check"
)

// Run starts Coffer with cfg and blocks until ctx is cancelled or a
// listener fails, then shuts down gracefully within cfg.ShutdownTimeout.
// It serves the public listener (cfg.Listen, unless PublicEndpoint is
// false) and every configured endpoint.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	app, err := Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer app.Close()
	ls, err := openListeners(cfg, app.endpoints, log)
	if err != nil {
		return err
	}
	return app.serve(ctx, ls)
}

// Serve is Run on an existing listener as the public endpoint (tests pass
// one on port 0).
func Serve(ctx context.Context, cfg config.Config, log *slog.Logger, ln net.Listener) error {
	app, err := Open(ctx, cfg, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer app.Close()
	pub := publicEndpoint(cfg)
	if len(pub.TrustedProxies) > 0 {
		ln = endpoint.Wrap(ln, pub, nil)
	}
	return app.serve(ctx, []listener{{ep: pub, ln: ln}})
}

func (a *App) serve(ctx context.Context, ls []listener) error {
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	// Other replicas' writes drop this one's caches (replicas.go).
	if err := a.replicas.follow(bg, a.invalidate); err != nil {
		return fmt.Errorf("subscribe to the other replicas' changes: %w", err)
	}
	// and their spent authentication-failure budgets (throttle.go).
	if err := a.replicas.followThrottles(bg, a.limiter); err != nil {
		return fmt.Errorf("subscribe to the other replicas' throttling: %w", err)
	}
	go a.reg.Run(bg, 5*time.Second) // this replica's batch of pull times
	// The work that must run once runs on the leader only (always this
	// process with SQLite).
	go a.replicas.lead(bg, a.background)
	if a.cfg.Pprof != "" {
		go servePprof(bg, a.cfg.Pprof, a.log)
	}
	a.log.Info("coffer serving", "region", a.cfg.Region, "account_id", a.accountID, "data", a.cfg.DataDir,
		"create_on_push", a.cfg.CreateOnPush, "endpoints", len(a.endpoints))
	return serveListeners(ctx, ls, a.Handler(), a.cfg.ShutdownTimeout, a.log)
}

// App is an opened Coffer: its stores, keys and handlers.
type App struct {
	cfg       config.Config
	log       *slog.Logger
	store     metadata.Store
	reg       *registry.Registry
	accountID string
	iam       *iam.Service
	kms       *kms.Service
	trail     *audit.Store
	gc        *gc.Collector
	lifecycle *runner.Runner
	endpoints []*endpoint.Endpoint
	handler   http.Handler
	mcache    *cache.Store
	replicas  *replicas
	limiter   *auth.FailureLimiter
	uploads   *staleUploads // nil: not S3, or turned off
}

// background runs the periodic work that must run once across replicas
// until ctx ends: due KMS key deletions and automatic rotations, lifecycle
// policies, the garbage collector (which also removes abandoned upload
// sessions), the abort of abandoned S3 multipart uploads, the deletion of
// old shared authentication-failure counts and the shared audit trail's
// digests.
func (a *App) background(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { a.kms.Run(ctx, time.Minute) })
	wg.Go(func() { a.replicas.sweepFailures(ctx) })
	wg.Go(func() { a.trail.RunSharedDigests(ctx) })
	if a.uploads != nil {
		wg.Go(func() { a.uploads.loop(ctx) })
	}
	if a.cfg.LifecycleInterval > 0 {
		wg.Go(func() { a.lifecycle.Loop(ctx, a.cfg.LifecycleInterval) })
	}
	if a.cfg.GCInterval > 0 {
		wg.Go(func() { a.gc.Loop(ctx, a.cfg.GCInterval) })
	}
	wg.Wait()
}

// invalidate drops everything this process caches of metadata-derived
// state, for a write another replica made.
func (a *App) invalidate() {
	a.mcache.Invalidate() // repositories, tags, authz's resource policies
	a.iam.Invalidate()    // identity policies
	a.kms.Invalidate()    // key views, aliases, unwrapped material
}

// Open opens the data directory and builds the service without serving.
// Admin subcommands use it too.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	// SQLite in the data directory or PostgreSQL (stores.go). A store that
	// holds sealed data refuses a new root key.
	store, err := OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	// Every consumer below gets the read cache, so each in-process write
	// invalidates it (internal/metadata/cache; Unwrap for the raw store).
	// With PostgreSQL each such write is announced to the other replicas.
	reps := newReplicas(store, log)
	mcache := cache.New(store, cache.Config{TTL: cfg.MetadataCacheTTL, OnWrite: reps.announce})
	store = mcache
	ok := false
	defer func() {
		if !ok {
			store.Close()
		}
	}()
	existing, err := sealedData(ctx, store)
	if err != nil {
		return nil, err
	}
	root, err := loadRootKey(cfg, existing, log)
	if err != nil {
		return nil, err
	}
	check, err := store.PutSettingIfAbsent(ctx, settingRootKeyCheck, root.CheckValue())
	if err != nil {
		return nil, fmt.Errorf("root key check: %w", err)
	}
	if !root.Matches(check) {
		return nil, errors.New("the root key does not match the one this data directory was created with; refusing to start (supply the original key)")
	}
	accountID, err := accountID(ctx, store, cfg.AccountID)
	if err != nil {
		return nil, err
	}
	driver, err := OpenDriver(ctx, cfg) // <data>/blobs or S3 (stores.go)
	if err != nil {
		return nil, err
	}
	idsvc, err := iam.New(iam.Config{AccountID: accountID, Docs: store, Root: root, Log: log})
	if err != nil {
		return nil, err
	}
	shared, err := sharedTrail(ctx, reps.pg, store, driver, root, reps.id) // several replicas, one trail
	if err != nil {
		return nil, err
	}
	trail, err := openTrail(cfg, accountID, root, shared, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			trail.Close()
		}
	}()
	kmsSvc, err := kms.New(kms.Config{AccountID: accountID, Region: cfg.Region, Docs: store, Root: root,
		IdentityPolicies: idsvc.IdentityPolicies, Log: log, Events: serviceKMSEvents(trail, log)})
	if err != nil {
		return nil, err
	}
	// AES256 repositories use the service root key, KMS and KMS_DSSE
	// repositories the built-in KMS through the grants they hold (issue #6).
	reg, err := newRegistry(cfg, accountID, store, driver, root, kmsSvc, log)
	if err != nil {
		return nil, err
	}
	if err := bootstrapAdmin(ctx, idsvc, configView{dataDir: cfg.DataDir, adminKeyID: cfg.AdminAccessKeyID,
		adminSecret: cfg.AdminSecretAccessKey}, os.Stderr, log); err != nil {
		return nil, fmt.Errorf("administrator: %w", err)
	}
	tokens, err := tokenKey(ctx, store, root)
	if err != nil {
		return nil, err
	}
	eps, err := Endpoints(cfg)
	if err != nil {
		return nil, err
	}
	epPolicies, err := endpointPolicies(eps)
	if err != nil {
		return nil, err
	}
	decider, err := authz.New(authz.Config{IAM: idsvc, Docs: store, AccountID: accountID, Region: cfg.Region, EndpointPolicies: epPolicies,
		Generation: mcache.Generation, CacheTTL: mcache.TTL()})
	if err != nil {
		return nil, err
	}
	presigner, err := presignKey(ctx, store, root)
	if err != nil {
		return nil, err
	}
	verifier, err := sigv4.New(sigv4.Config{Region: cfg.Region, Keys: keyStore{iam: idsvc}, MaxBody: ecrapi.MaxLayerPartBody})
	if err != nil {
		return nil, err
	}
	tokenAuthn := newTokenAuthenticator(tokens, time.Now, idsvc.Exists)
	var (
		v2Authn auth.Authenticator = tokenAuthn
		v2Authz auth.Authorizer    = decider
	)
	if cfg.InsecureAllowAnonymous {
		v2Authn, v2Authz = anonymousOrToken{tokens: tokenAuthn}, allowAnonymous{next: decider}
		log.Warn("anonymous /v2/ access is allowed (--insecure-allow-anonymous, loopback only)")
	}
	limiter := &auth.FailureLimiter{}
	reps.shareFailures(limiter) // one budget across replicas (throttle.go)
	ociH, err := oci.New(oci.Config{Registry: reg, Authn: v2Authn, Authz: v2Authz, Realm: "coffer", Limiter: limiter, Log: log})
	if err != nil {
		return nil, err
	}
	ecrH, err := ecrapi.New(ecrapi.Config{Registry: reg, Authz: decider, Tokens: tokens, Presign: presigner, PrincipalExists: idsvc.Exists, KMS: kmsSvc,
		DownloadBase: downloadBase(eps), Log: log})
	if err != nil {
		return nil, err
	}
	iamH, stsH, err := newIAMHandlers(idsvc, decider, log)
	if err != nil {
		return nil, err
	}
	ctH, err := audit.NewLookupHandler(audit.LookupConfig{Store: trail, Authz: decider, Log: log})
	if err != nil {
		return nil, err
	}
	door := &awsDoor{verifier: verifier, ecr: ecrH, iam: iamH, sts: stsH, kms: kms.NewHandler(kmsSvc), cloudtrail: ctH, limiter: limiter, log: log}
	collector, err := gc.New(gc.Config{Store: store, Driver: driver, Log: log.With("log", "gc")})
	if err != nil {
		return nil, err
	}
	lifecycleRunner := runner.New(runner.Config{Store: store, Driver: driver, Log: log.With("log", "lifecycle"), LastPull: reg.LastPull,
		OnExpire: lifecycleExpiries(trail, reg, accountID, log)})
	app := &App{cfg: cfg, log: log, store: store, reg: reg, gc: collector, lifecycle: lifecycleRunner, accountID: accountID, iam: idsvc, kms: kmsSvc, trail: trail, endpoints: eps,
		mcache: mcache, replicas: reps, limiter: limiter, uploads: newStaleUploads(driver, cfg.S3AbortUploadsAfter, log)}
	// Behind the replicas' fence: another replica's write is seen at the
	// next request (replicas.go).
	app.handler = reps.fence(newPipeline(pipelineConfig{
		Log: log, Audit: trail, Ready: reg.Ready,
		Routes: []mount{
			{prefix: "/v2", handler: ociH, unavailable: ociUnavailable, denied: ociDenied, service: dkrService},
			{prefix: layerDownloadMount, family: "layers", handler: ecrH.LayerDownloads(), denied: s3Denied, service: s3Service},
			{prefix: "/", family: "aws", handler: door, unavailable: awsUnavailable, denied: awsDenied, service: apiService},
		},
	}), app.invalidate)
	ok = true
	return app, nil
}

// Handler returns the root HTTP handler.
func (a *App) Handler() http.Handler { return a.handler }

// Close releases the stores; the audit trail seals its open segment and
// writes a final signed digest. Call it after the listeners have shut down.
func (a *App) Close() error {
	_ = a.reg.FlushPulls(context.Background())
	terr := a.trail.Close()
	if terr == nil && a.trail.Shared() {
		// The files this replica just published go into the shared chain
		// now rather than at the leader's next digest: the last replica
		// to stop leaves a trail that verifies whole.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := a.trail.SharedDigest(ctx, true); err != nil {
			a.log.Warn("audit: the shared trail's closing digest failed; the leader's next digest covers its files", "error", err)
		}
		cancel()
	}
	return errors.Join(terr, a.store.Close())
}

func loadRootKey(cfg config.Config, existing bool, log *slog.Logger) (*rootkey.Key, error) {
	if cfg.RootKey != "" {
		k, err := rootkey.FromBase64(cfg.RootKey)
		if err != nil {
			return nil, fmt.Errorf("COFFER_ROOT_KEY: %w", err)
		}
		return k, nil
	}
	path := cfg.RootKeyPath()
	k, err := rootkey.LoadFile(path)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("root key %s: %w", path, err)
	}
	if existing {
		return nil, fmt.Errorf("root key %s is missing but the data directory holds data encrypted under it; refusing to start with a new key (restore the key file or set COFFER_ROOT_KEY)", path)
	}
	k, err = rootkey.Generate()
	if err != nil {
		return nil, err
	}
	if err := rootkey.WriteFile(path, k); err != nil {
		return nil, fmt.Errorf("write root key: %w", err)
	}
	log.Info("generated a new service root key", "path", path)
	return k, nil
}

// accountID returns the configured account ID, or the one generated on
// first start; a configured ID that differs from the stored one is refused.
func accountID(ctx context.Context, store metadata.Store, configured string) (string, error) {
	want := configured
	if want == "" {
		n, err := rand.Int(rand.Reader, big.NewInt(9e11))
		if err != nil {
			return "", err
		}
		want = fmt.Sprintf("%012d", n.Int64()+1e11)
	}
	got, err := store.PutSettingIfAbsent(ctx, settingAccountID, want)
	if err != nil {
		return "", fmt.Errorf("account ID: %w", err)
	}
	if configured != "" && got != configured {
		return "", fmt.Errorf("--account-id %s differs from the account %s this data directory belongs to", configured, got)
	}
	return got, nil
}

func servePprof(ctx context.Context, addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Info("pprof listening", "address", addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("pprof listener failed", "error", err)
	}
}

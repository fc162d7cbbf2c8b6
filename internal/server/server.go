// Package server wires Coffer's components together and runs the listener:
// it opens the data directory (root key, metadata, blob storage), builds the
// request pipeline, and shuts down gracefully.
//
// Data directory layout:
//
//	<data>/root.key      service root key, 0600 (unless supplied by the operator)
//	<data>/coffer.db     SQLite metadata (WAL)
//	<data>/blobs/        encrypted objects: layers/..., manifests/...
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
	"path/filepath"
	"time"

	"github.com/cofferhq/coffer/internal/audit"
	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/auth/sigv4"
	"github.com/cofferhq/coffer/internal/authz"
	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/crypto/rootkey"
	"github.com/cofferhq/coffer/internal/ecrapi"
	"github.com/cofferhq/coffer/internal/iam"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
	"github.com/cofferhq/coffer/internal/oci"
	"github.com/cofferhq/coffer/internal/registry"
	"github.com/cofferhq/coffer/internal/storage/fs"
)

// Settings keys kept in the metadata store.
const (
	settingAccountID    = "account_id"
	settingRootKeyCheck = "root_key_check"
)

// Run starts Coffer with cfg and blocks until ctx is cancelled or the
// listener fails, then shuts down gracefully within cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	return Serve(ctx, cfg, log, ln)
}

// Serve is Run on an existing listener (tests pass one on port 0).
func Serve(ctx context.Context, cfg config.Config, log *slog.Logger, ln net.Listener) error {
	defer ln.Close()
	app, err := Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer app.Close()

	srv := &http.Server{
		Handler:           app.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// Blob bodies stream for as long as they take; idle connections and
		// slow headers are what the timeouts bound.
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	go app.reg.Run(bg, 5*time.Second)

	if cfg.Pprof != "" {
		go servePprof(bg, cfg.Pprof, log)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("coffer serving", "address", ln.Addr().String(), "region", cfg.Region,
		"account_id", app.accountID, "data", cfg.DataDir, "create_on_push", cfg.CreateOnPush)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// App is an opened Coffer: its stores, keys and handlers.
type App struct {
	cfg       config.Config
	log       *slog.Logger
	store     metadata.Store
	reg       *registry.Registry
	accountID string
	iam       *iam.Service
	handler   http.Handler
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
	dbPath := filepath.Join(cfg.DataDir, "coffer.db")
	_, statErr := os.Stat(dbPath)
	existing := statErr == nil

	root, err := loadRootKey(cfg, existing, log)
	if err != nil {
		return nil, err
	}
	store, err := sqlite.Open(ctx, sqlite.Config{Path: dbPath})
	if err != nil {
		return nil, fmt.Errorf("metadata store: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			store.Close()
		}
	}()
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
	driver, err := fs.New(fs.Config{Root: filepath.Join(cfg.DataDir, "blobs")})
	if err != nil {
		return nil, fmt.Errorf("blob storage: %w", err)
	}
	reg, err := registry.New(registry.Config{
		Region: cfg.Region, AccountID: accountID, Store: store, Driver: driver,
		Keys: registry.RootKeys{Root: root}, Root: root, CreateOnPush: cfg.CreateOnPush, Log: log,
	})
	if err != nil {
		return nil, err
	}
	idsvc, err := iam.New(iam.Config{AccountID: accountID, Docs: store, Root: root, Log: log})
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
	decider, err := authz.New(authz.Config{IAM: idsvc, Docs: store, AccountID: accountID, Region: cfg.Region})
	if err != nil {
		return nil, err
	}
	verifier, err := sigv4.New(sigv4.Config{Region: cfg.Region, Keys: keyStore{iam: idsvc}})
	if err != nil {
		return nil, err
	}
	tokenAuthn := tokenAuthenticator{key: tokens, now: time.Now}
	var (
		v2Authn auth.Authenticator = tokenAuthn
		v2Authz auth.Authorizer    = decider
	)
	if cfg.InsecureAllowAnonymous {
		v2Authn, v2Authz = anonymousOrToken{tokens: tokenAuthn}, allowAnonymous{next: decider}
		log.Warn("anonymous /v2/ access is allowed (--insecure-allow-anonymous, loopback only)")
	}
	limiter := &auth.FailureLimiter{}
	ociH, err := oci.New(oci.Config{Registry: reg, Authn: v2Authn, Authz: v2Authz, Realm: "coffer", Limiter: limiter, Log: log})
	if err != nil {
		return nil, err
	}
	ecrH, err := ecrapi.New(ecrapi.Config{Registry: reg, Authz: decider, Tokens: tokens, Log: log})
	if err != nil {
		return nil, err
	}
	iamH, stsH, err := newIAMHandlers(idsvc, decider, log)
	if err != nil {
		return nil, err
	}
	door := &awsDoor{verifier: verifier, ecr: ecrH, iam: iamH, sts: stsH, limiter: limiter, log: log}
	app := &App{cfg: cfg, log: log, store: store, reg: reg, accountID: accountID, iam: idsvc}
	app.handler = newPipeline(pipelineConfig{
		Log: log, Audit: audit.LogHook{Log: log.With("log", "audit")}, Ready: reg.Ready,
		Routes: []mount{
			{prefix: "/v2", handler: ociH, unavailable: ociUnavailable},
			{prefix: "/", family: "aws", handler: door, unavailable: awsUnavailable},
		},
	})
	ok = true
	return app, nil
}

// Handler returns the root HTTP handler.
func (a *App) Handler() http.Handler { return a.handler }

// Close releases the stores.
func (a *App) Close() error {
	_ = a.reg.FlushPulls(context.Background())
	return a.store.Close()
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

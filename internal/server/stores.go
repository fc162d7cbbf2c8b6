package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cofferhq/coffer/internal/config"
	"github.com/cofferhq/coffer/internal/metadata"
	"github.com/cofferhq/coffer/internal/metadata/postgres"
	"github.com/cofferhq/coffer/internal/metadata/sqlite"
	"github.com/cofferhq/coffer/internal/storage"
	"github.com/cofferhq/coffer/internal/storage/fs"
	"github.com/cofferhq/coffer/internal/storage/s3"
)

// sqliteFile is the embedded metadata database's name in the data
// directory.
const sqliteFile = "coffer.db"

// pingTimeout bounds the object store's start-up check.
const pingTimeout = 30 * time.Second

// OpenStore opens the metadata store cfg selects: SQLite in the data
// directory (created on first use), or PostgreSQL (migrated on open).
// Errors never contain the DSN.
func OpenStore(ctx context.Context, cfg config.Config, log *slog.Logger) (metadata.Store, error) {
	if !cfg.UsesPostgres() {
		s, err := sqlite.Open(ctx, sqlite.Config{Path: SQLitePath(cfg)})
		if err != nil {
			return nil, fmt.Errorf("metadata store: %w", err)
		}
		return s, nil
	}
	s, err := postgres.Open(ctx, postgres.Config{
		DSN:      cfg.MetadataDSN,
		MaxConns: int32(cfg.MetadataMaxConns),
		MinConns: int32(cfg.MetadataMinConns),
		Logger:   log.With("log", "postgres"),
	})
	if err != nil {
		return nil, fmt.Errorf("metadata store: %w", err)
	}
	return s, nil
}

// SQLitePath is where the embedded metadata database lives.
func SQLitePath(cfg config.Config) string { return filepath.Join(cfg.DataDir, sqliteFile) }

// OpenDriver opens the blob storage cfg selects: the filesystem under
// <data>/blobs, or an S3 bucket, which must answer a write (Ping) before
// the server starts. S3 credentials come from the configuration or the
// standard AWS chain; errors never contain them.
func OpenDriver(ctx context.Context, cfg config.Config) (storage.Driver, error) {
	if cfg.Storage != config.StorageS3 {
		d, err := fs.New(fs.Config{Root: filepath.Join(cfg.DataDir, "blobs")})
		if err != nil {
			return nil, fmt.Errorf("blob storage: %w", err)
		}
		return d, nil
	}
	region := cfg.S3Region
	if region == "" {
		region = cfg.Region
	}
	d, err := s3.New(ctx, s3.Config{
		Bucket: cfg.S3Bucket, Prefix: cfg.S3Prefix, Region: region, Endpoint: cfg.S3Endpoint, PathStyle: cfg.S3PathStyle,
		AccessKeyID: cfg.S3AccessKeyID, SecretAccessKey: cfg.S3SecretAccessKey, SessionToken: cfg.S3SessionToken,
		ServerSideEncryption: cfg.S3ServerSideEncryption,
	})
	if err != nil {
		return nil, fmt.Errorf("blob storage: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := d.Ping(pctx); err != nil {
		return nil, fmt.Errorf("blob storage: bucket %s does not answer: %w", cfg.S3Bucket, err)
	}
	return d, nil
}

// sealedData reports whether the store already holds data sealed under a
// root key: its root key check is set on first start, before anything
// else is written.
func sealedData(ctx context.Context, store metadata.Store) (bool, error) {
	_, err := store.GetSetting(ctx, settingRootKeyCheck)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, metadata.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("metadata store: %w", err)
}

// OpenExisting opens the metadata store and blob storage of a deployment
// that has been started before, for admin commands that work beside a live
// server (gc, lifecycle, fsck): it creates nothing.
func OpenExisting(ctx context.Context, cfg config.Config, log *slog.Logger) (metadata.Store, storage.Driver, error) {
	if !cfg.UsesPostgres() {
		db := SQLitePath(cfg)
		if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%s does not exist; the server creates it on first start", db)
		}
	}
	store, err := OpenStore(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	if cfg.UsesPostgres() {
		// Opening migrated the database; without a root key check no
		// server has started on it yet.
		if sealed, err := sealedData(ctx, store); err != nil || !sealed {
			store.Close()
			if err == nil {
				err = errors.New("the metadata database holds no Coffer data yet; the server initializes it on first start")
			}
			return nil, nil, err
		}
	}
	driver, err := OpenDriver(ctx, cfg)
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return store, driver, nil
}

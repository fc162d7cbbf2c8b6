package config

import (
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/storage"
)

// The settings of the metadata store and blob storage (issue #9). A DSN
// can hold a password and an endpoint URL credentials, so no message or
// summary here ever quotes either as given.

// Storage kinds.
const (
	StorageFS = "fs"
	StorageS3 = "s3"
)

// maxPoolConns bounds metadata_max_conns (PostgreSQL's own default
// max_connections is 100).
const maxPoolConns = 10000

// bucketRE is S3's bucket naming rule (3 to 63 characters, lower-case
// letters, digits, dots and hyphens, a letter or digit at each end).
var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// s3Settings are the settings that mean something only with storage s3.
var s3Settings = []settingID{sS3Bucket, sS3Region, sS3Endpoint, sS3PathStyle, sS3Prefix,
	sS3ServerSideEncryption, sS3AbortUploadsAfter, sS3AccessKeyID, sS3SecretAccessKey, sS3SessionToken}

// minAbortUploadsAfter is the least s3_abort_uploads_after: an upload
// younger than it may be in progress, and aborting it fails its push.
const minAbortUploadsAfter = time.Hour

// UsesPostgres reports whether the metadata store is PostgreSQL.
func (c Config) UsesPostgres() bool { return c.MetadataDSN != "" }

// backendProblems checks the metadata and storage settings.
func (c Config) backendProblems() []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(c.checkDSN())
	for _, id := range []settingID{sMetadataMaxConns, sMetadataMinConns} {
		n := *settings[id].field(&c).(*int)
		switch {
		case n < 0 || n > maxPoolConns:
			add(c.problem(id, "%d is outside 0 to %d", n, maxPoolConns))
		case n > 0 && !c.UsesPostgres():
			add(c.problem(id, "applies only to PostgreSQL (set metadata_dsn)"))
		}
	}
	if c.MetadataMaxConns > 0 && c.MetadataMinConns > c.MetadataMaxConns {
		add(c.problem(sMetadataMinConns, "%d is more than metadata_max_conns %d", c.MetadataMinConns, c.MetadataMaxConns))
	}
	switch c.Storage {
	case StorageS3:
		errs = append(errs, c.s3Problems()...)
	case StorageFS:
		for _, id := range s3Settings {
			if c.origin[id].kind != fromDefault {
				add(c.problem(id, "applies only with storage s3 (storage is fs)"))
			}
		}
	default:
		add(c.problem(sStorage, "%q is not a storage kind (want fs or s3)", c.Storage))
	}
	return errs
}

// checkDSN checks the metadata DSN without ever quoting it.
func (c Config) checkDSN() error {
	if c.MetadataDSN == "" {
		return nil
	}
	u, err := url.Parse(c.MetadataDSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return c.problem(sMetadataDSN, "is not a postgres:// URL (empty means SQLite in the data directory)")
	}
	if strings.TrimPrefix(u.Path, "/") == "" {
		return c.problem(sMetadataDSN, "names no database (postgres://host:5432/DATABASE)")
	}
	if dsnHasPassword(u) && c.origin[sMetadataDSN].kind != fromEnv {
		return c.problem(sMetadataDSN, "holds a password, which is read only from the environment (%s); or use PGPASSWORD or a passfile",
			settings[sMetadataDSN].env)
	}
	return nil
}

func dsnHasPassword(u *url.URL) bool {
	_, inUser := u.User.Password()
	return inUser || u.Query().Has("password")
}

func (c Config) s3Problems() []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if c.S3Bucket == "" {
		add(c.problem(sStorage, "s3 needs s3_bucket (%s)", settings[sS3Bucket].env))
	} else if !bucketRE.MatchString(c.S3Bucket) {
		add(c.problem(sS3Bucket, "%q is not an S3 bucket name (3 to 63 of a-z, 0-9, '.' and '-')", c.S3Bucket))
	}
	if c.S3Region != "" && strings.ContainsFunc(c.S3Region, func(r rune) bool { return r <= ' ' || r > '~' }) {
		add(c.problem(sS3Region, "%q is not a region name", c.S3Region))
	}
	if c.S3Endpoint != "" {
		u, err := url.Parse(c.S3Endpoint)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			add(c.problem(sS3Endpoint, "is not an http(s) URL such as https://s3.example.com:9000"))
		case u.User != nil:
			add(c.problem(sS3Endpoint, "must not hold credentials; set %s and %s", settings[sS3AccessKeyID].env, settings[sS3SecretAccessKey].env))
		case u.RawQuery != "" || u.Fragment != "":
			add(c.problem(sS3Endpoint, "%q must not have a query or fragment", u.Scheme+"://"+u.Host+u.Path))
		}
	}
	if p := strings.Trim(c.S3Prefix, "/"); p != "" && !storage.ValidKey(p) {
		add(c.problem(sS3Prefix, "%q is not a key path (segments of printable characters, no . or ..)", c.S3Prefix))
	}
	switch c.S3ServerSideEncryption {
	case "", "AES256":
	default:
		add(c.problem(sS3ServerSideEncryption, "%q is not supported (want AES256, or empty for the bucket's default)", c.S3ServerSideEncryption))
	}
	if c.S3AbortUploadsAfter != 0 && c.S3AbortUploadsAfter < minAbortUploadsAfter {
		add(c.problem(sS3AbortUploadsAfter, "%v is less than %v, which could abort uploads in progress (0 turns it off)", c.S3AbortUploadsAfter, minAbortUploadsAfter))
	}
	if (c.S3AccessKeyID == "") != (c.S3SecretAccessKey == "") {
		add(c.problem(sS3AccessKeyID, "must be set together with %s", settings[sS3SecretAccessKey].env))
	}
	if c.S3SessionToken != "" && c.S3AccessKeyID == "" {
		add(c.problem(sS3SessionToken, "needs %s and %s", settings[sS3AccessKeyID].env, settings[sS3SecretAccessKey].env))
	}
	return errs
}

// metadataSummary shows the metadata store without secrets: the DSN loses
// its password (user info and password parameter).
func (c Config) metadataSummary() string {
	if c.MetadataDSN == "" {
		return "sqlite"
	}
	u, err := url.Parse(c.MetadataDSN)
	if err != nil {
		return "<unparsable DSN>"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	q := u.Query()
	if q.Has("password") {
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// storageSummary shows the blob storage: fs, or s3://bucket/prefix with the
// endpoint's scheme and host when one is set.
func (c Config) storageSummary() string {
	if c.Storage != StorageS3 {
		return c.Storage
	}
	s := "s3://" + c.S3Bucket
	if p := strings.Trim(c.S3Prefix, "/"); p != "" {
		s += "/" + p
	}
	if u, err := url.Parse(c.S3Endpoint); err == nil && u.Host != "" {
		s += " at " + u.Scheme + "://" + u.Host
	}
	return s
}

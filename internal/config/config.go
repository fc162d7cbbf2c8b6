package config

import (
	"fmt"
	"github.com/cofferhq/coffer/internal/endpoint"
	"github.com/cofferhq/coffer/internal/quota"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is Coffer's whole configuration. Build it with Load (or Defaults
// for tests) and check it with Validate; a Config is a plain value and is
// safe to copy.
//
// Config redacts RootKey wherever it formats itself: String, every fmt verb
// (Config implements fmt.Formatter), slog (LogValue) and encoding/json.
// Printing the RootKey field on its own is the caller's mistake to avoid.
type Config struct {
	// Listen is the registry's host:port. The host is an IP literal or
	// "localhost".
	Listen string
	// DataDir holds everything Coffer keeps on disk. A relative path is
	// relative to the working directory, not to the config file.
	DataDir string
	// MetadataDSN selects the metadata store: empty means the embedded
	// SQLite database in DataDir, a postgres:// or postgresql:// URL means
	// PostgreSQL. A password in it is secret: Validate accepts one only
	// from the environment, and the DSN is never printed with it.
	MetadataDSN string `json:"-"`
	// MetadataMaxConns and MetadataMinConns size PostgreSQL's connection
	// pool (0: the DSN's pool_max_conns / pool_min_conns, else pgxpool's
	// defaults).
	MetadataMaxConns int
	MetadataMinConns int
	// Storage selects blob storage: "fs" (DataDir/blobs) or "s3".
	Storage string
	// S3Bucket, S3Region (empty: Region), S3Endpoint (empty: AWS),
	// S3PathStyle, S3Prefix and S3ServerSideEncryption ("" or "AES256")
	// configure the S3 driver when Storage is "s3".
	S3Bucket               string
	S3Region               string
	S3Endpoint             string
	S3PathStyle            bool
	S3Prefix               string
	S3ServerSideEncryption string
	// S3AbortUploadsAfter is the age past which the leader aborts a
	// multipart upload in the bucket (abandoned by a writer that died);
	// 0 turns it off. It must exceed the longest upload in progress.
	S3AbortUploadsAfter time.Duration
	// S3AccessKeyID, S3SecretAccessKey and S3SessionToken are static S3
	// credentials, from the environment only; empty means the standard AWS
	// credential chain. They are never printed.
	S3AccessKeyID     string `json:"-"`
	S3SecretAccessKey string `json:"-"`
	S3SessionToken    string `json:"-"`
	// Region is the AWS-style region Coffer reports in ARNs and hosts.
	Region string
	// AccountID is the 12-digit account ID. Empty means the server
	// generates one on first start and keeps it in DataDir.
	AccountID string
	// CreateOnPush creates a repository when an image is pushed to a name
	// that does not exist yet.
	CreateOnPush bool
	// InsecureAllowAnonymous accepts unauthenticated requests, which is
	// what allows a non-loopback Listen today.
	InsecureAllowAnonymous bool
	// RootKeyFile is the root key's file. Empty means <DataDir>/root.key;
	// use RootKeyPath rather than reading this field.
	RootKeyFile string
	// RootKey is the root key itself: standard base64 (with padding) of
	// 32 bytes, surrounding whitespace ignored, as crypto/rootkey's
	// FromBase64 reads it. It comes only from the environment
	// (COFFER_ROOT_KEY) and excludes RootKeyFile. It is secret: never log
	// or print it.
	RootKey string `json:"-"`
	// AdminAccessKeyID and AdminSecretAccessKey name the access key of the
	// administrator created on first start; empty means generate one.
	// They come only from the environment (COFFER_ADMIN_ACCESS_KEY_ID,
	// COFFER_ADMIN_SECRET_ACCESS_KEY) and are never printed.
	AdminAccessKeyID     string `json:"-"`
	AdminSecretAccessKey string `json:"-"`
	// PublicEndpoint serves the default listener (Listen). With false,
	// only the configured Endpoints listen.
	PublicEndpoint bool
	// Endpoints are ECR-style interface VPC endpoints (issue #7): named
	// listeners with their own services, DNS names, allowed sources, TLS
	// and endpoint policy. Only the config file sets them.
	Endpoints []endpoint.Config
	// LifecycleInterval and GCInterval pace the background lifecycle
	// evaluation and garbage collection; 0 turns either off.
	LifecycleInterval time.Duration
	GCInterval        time.Duration
	// MetadataCacheTTL bounds how long the in-process caches of
	// repositories, tags and resource policies use an entry
	// (internal/metadata/cache): writes made through this process are
	// seen at once, writes by other processes within the TTL. 0 turns
	// caching off.
	MetadataCacheTTL time.Duration
	// InsecureHTTP serves plain HTTP on a non-loopback Listen; without it
	// such a listener serves TLS with a certificate from the private CA
	// (issue #7: TLS on every non-loopback listener by default).
	InsecureHTTP bool
	// TrustedProxies is a comma-separated list of CIDRs (or addresses) of
	// proxies trusted on every listener: their PROXY protocol header and
	// X-Forwarded-For name the client (docs/endpoints.md). An endpoint's
	// own trusted_proxies add to it. Use TrustedProxyPrefixes to read it.
	TrustedProxies string
	// AuditRetentionDays deletes audit files older than that many days
	// (0 keeps all); AuditWebhookURL and AuditSyslogAddr forward every
	// record to a SIEM (issue #8).
	AuditRetentionDays int
	AuditWebhookURL    string
	AuditSyslogAddr    string
	// AuditDigestInterval is how often a signed digest is written (the
	// trail's own, and the replicas' shared one).
	AuditDigestInterval time.Duration
	// QuotaMaxImages and QuotaMaxBytes (a size such as "10GiB"; empty or
	// 0 for none) are every repository's default limits, and Quotas
	// (file only) override them per repository name pattern; use
	// QuotaRules to read them (docs/quotas.md).
	QuotaMaxImages int
	QuotaMaxBytes  string
	Quotas         []quota.Rule
	// LogLevel is one of debug, info, warn, error.
	LogLevel string
	// LogFormat is json or text.
	LogFormat string
	// Pprof is the host:port of the net/http/pprof listener, on a
	// loopback IP only; empty turns it off.
	Pprof string
	// ShutdownTimeout bounds the graceful shutdown after a signal.
	ShutdownTimeout time.Duration
	// File is the config file Load read, empty if none. It is informative
	// (for logs and error messages) and is not itself a setting.
	File string

	// origin records where each setting's value came from, for error
	// messages. The zero value means "default".
	origin [numSettings]origin
}

// Defaults returns the configuration used when nothing else is set.
func Defaults() Config {
	return Config{
		Listen:              "127.0.0.1:5000",
		DataDir:             "./coffer-data",
		Storage:             "fs",
		Region:              "us-east-1",
		LogLevel:            "info",
		LogFormat:           "json",
		ShutdownTimeout:     30 * time.Second,
		PublicEndpoint:      true,
		LifecycleInterval:   time.Hour,
		GCInterval:          time.Hour,
		AuditDigestInterval: time.Hour,
		MetadataCacheTTL:    time.Second,
		S3AbortUploadsAfter: 24 * time.Hour,
	}
}

// RootKeyPath returns the file that holds the root key: RootKeyFile if set,
// otherwise root.key in DataDir. It is meaningless when RootKey is set.
func (c Config) RootKeyPath() string {
	if c.RootKeyFile != "" {
		return c.RootKeyFile
	}
	return filepath.Join(c.DataDir, "root.key")
}

// summary lists the configuration as log attributes. It is the one place
// that decides what is safe to show: the root key appears only as "env".
func (c Config) summary() []slog.Attr {
	attrs := []slog.Attr{
		slog.String("listen", c.Listen),
		slog.String("data", c.DataDir),
		slog.String("metadata", c.metadataSummary()),
		slog.String("storage", c.storageSummary()),
		slog.String("region", c.Region),
		slog.String("account_id", orNote(c.AccountID, "<generated>")),
		slog.Bool("create_on_push", c.CreateOnPush),
		slog.Bool("insecure_allow_anonymous", c.InsecureAllowAnonymous),
	}
	if c.RootKey != "" {
		attrs = append(attrs, slog.String("root_key", "<env>"))
	} else {
		attrs = append(attrs, slog.String("root_key_file", c.RootKeyPath()))
	}
	return append(attrs,
		slog.String("log_level", c.LogLevel),
		slog.String("log_format", c.LogFormat),
		slog.String("pprof", orNote(c.Pprof, "<off>")),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.String("config_file", orNote(c.File, "<none>")),
		slog.Bool("public_endpoint", c.PublicEndpoint),
		slog.Int("endpoints", len(c.Endpoints)),
		slog.String("lifecycle_interval", c.LifecycleInterval.String()),
		slog.String("gc_interval", c.GCInterval.String()),
		slog.Bool("insecure_http", c.InsecureHTTP),
		slog.String("trusted_proxies", orNote(c.TrustedProxies, "<none>")),
		slog.Int("audit_retention_days", c.AuditRetentionDays),
		slog.String("audit_webhook_url", orNote(c.AuditWebhookURL, "<none>")),
		slog.String("audit_syslog_addr", orNote(c.AuditSyslogAddr, "<none>")),
		slog.String("audit_digest_interval", c.AuditDigestInterval.String()),
	)
}

func orNote(s, note string) string {
	if s == "" {
		return note
	}
	return s
}

// String returns a one-line summary for logs and diagnostics, as
// space-separated key=value pairs. It never contains RootKey.
func (c Config) String() string {
	var b strings.Builder
	for i, a := range c.summary() {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := a.Value.String()
		if v == "" || strings.ContainsAny(v, " \t\n\"=") {
			v = strconv.Quote(v)
		}
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(v)
	}
	return b.String()
}

// Format makes every fmt verb, including %#v and %+v, print String, so
// formatting a Config never reveals RootKey.
func (c Config) Format(f fmt.State, verb rune) {
	s := c.String()
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	_, _ = fmt.Fprint(f, s)
}

// LogValue implements slog.LogValuer: a Config logs as a group of the
// fields String shows. Without it slog's JSON handler would marshal the
// struct field by field.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(c.summary()...)
}

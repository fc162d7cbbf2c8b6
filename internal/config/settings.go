package config

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// settingID indexes settings and Config.origin.
type settingID int

const (
	sListen settingID = iota
	sData
	sMetadataDSN
	sMetadataMaxConns
	sMetadataMinConns
	sStorage
	sS3Bucket
	sS3Region
	sS3Endpoint
	sS3PathStyle
	sS3Prefix
	sS3ServerSideEncryption
	sS3AbortUploadsAfter
	sS3AccessKeyID
	sS3SecretAccessKey
	sS3SessionToken
	sRegion
	sAccountID
	sCreateOnPush
	sInsecureAllowAnonymous
	sRootKeyFile
	sRootKey
	sLogLevel
	sLogFormat
	sPprof
	sShutdownTimeout
	sAdminAccessKeyID
	sAdminSecretAccessKey
	sPublicEndpoint
	sLifecycleInterval
	sGCInterval
	sMetadataCacheTTL
	sInsecureHTTP
	sTrustedProxies
	sAuditRetentionDays
	sAuditWebhookURL
	sAuditSyslogAddr
	sAuditDigestInterval
	sQuotaMaxImages
	sQuotaMaxBytes
	numSettings
)

// setting describes one configuration setting: its names in each source
// and the Config field it sets. This table is the single source of truth
// for the YAML keys, environment variables, flags and help text.
type setting struct {
	key   string // YAML key, and the setting's name in messages
	env   string // environment variable
	flag  string // flag name without dashes; "" if it has no flag
	arg   string // placeholder for the value in help text; "" for booleans
	usage string
	// def is the default for help text when Defaults' value alone would
	// mislead (empty values with a meaning).
	def string
	// secret settings are refused in the file and never shown.
	secret bool
	// field returns a pointer to the Config field: *string, *bool or
	// *time.Duration.
	field func(*Config) any
}

var settings = [numSettings]setting{
	sListen: {
		key: "listen", env: "COFFER_LISTEN", flag: "listen", arg: "ADDR",
		usage: "address to listen on, host:port; host is an IP or localhost",
		field: func(c *Config) any { return &c.Listen },
	},
	sData: {
		key: "data", env: "COFFER_DATA", flag: "data", arg: "DIR",
		usage: "data directory",
		field: func(c *Config) any { return &c.DataDir },
	},
	sMetadataDSN: {
		key: "metadata_dsn", env: "COFFER_METADATA_DSN", flag: "metadata-dsn", arg: "URL",
		usage: "PostgreSQL metadata database, postgres://user@host:5432/db?sslmode=verify-full (a password in it: environment only)",
		def:   "SQLite <data>/coffer.db",
		field: func(c *Config) any { return &c.MetadataDSN },
	},
	sMetadataMaxConns: {
		key: "metadata_max_conns", env: "COFFER_METADATA_MAX_CONNS", flag: "metadata-max-conns", arg: "N",
		usage: "PostgreSQL connection pool size; 0: the DSN's pool_max_conns, else max(4, CPUs)",
		field: func(c *Config) any { return &c.MetadataMaxConns },
	},
	sMetadataMinConns: {
		key: "metadata_min_conns", env: "COFFER_METADATA_MIN_CONNS", flag: "metadata-min-conns", arg: "N",
		usage: "PostgreSQL connections kept open when idle",
		field: func(c *Config) any { return &c.MetadataMinConns },
	},
	sStorage: {
		key: "storage", env: "COFFER_STORAGE", flag: "storage", arg: "KIND",
		usage: "blob storage: fs (<data>/blobs) or s3 (the s3_* settings)",
		field: func(c *Config) any { return &c.Storage },
	},
	sS3Bucket: {
		key: "s3_bucket", env: "COFFER_S3_BUCKET", flag: "s3-bucket", arg: "NAME",
		usage: "S3 bucket of the encrypted objects; it must exist",
		field: func(c *Config) any { return &c.S3Bucket },
	},
	sS3Region: {
		key: "s3_region", env: "COFFER_S3_REGION", flag: "s3-region", arg: "REGION",
		usage: "the bucket's region",
		def:   "--region",
		field: func(c *Config) any { return &c.S3Region },
	},
	sS3Endpoint: {
		key: "s3_endpoint", env: "COFFER_S3_ENDPOINT", flag: "s3-endpoint", arg: "URL",
		usage: "S3 endpoint URL of an S3-compatible store (https://minio.example:9000); empty: AWS",
		field: func(c *Config) any { return &c.S3Endpoint },
	},
	sS3PathStyle: {
		key: "s3_path_style", env: "COFFER_S3_PATH_STYLE", flag: "s3-path-style",
		usage: "path-style bucket addressing (endpoint/bucket/key), which most S3-compatible stores want",
		field: func(c *Config) any { return &c.S3PathStyle },
	},
	sS3Prefix: {
		key: "s3_prefix", env: "COFFER_S3_PREFIX", flag: "s3-prefix", arg: "PREFIX",
		usage: "key prefix inside the bucket, so several deployments can share one",
		field: func(c *Config) any { return &c.S3Prefix },
	},
	sS3ServerSideEncryption: {
		key: "s3_server_side_encryption", env: "COFFER_S3_SERVER_SIDE_ENCRYPTION", flag: "s3-server-side-encryption", arg: "SSE",
		usage: "AES256 asks the bucket to encrypt too (SSE-S3), on top of Coffer's own encryption; empty: the bucket's default",
		field: func(c *Config) any { return &c.S3ServerSideEncryption },
	},
	sS3AbortUploadsAfter: {
		key: "s3_abort_uploads_after", env: "COFFER_S3_ABORT_UPLOADS_AFTER", flag: "s3-abort-uploads-after", arg: "DURATION",
		usage: "abort multipart uploads in the bucket started longer ago than this (writers that died leave them, and S3 bills their parts); checked hourly; at least 1h, 0 turns it off",
		field: func(c *Config) any { return &c.S3AbortUploadsAfter },
	},
	sS3AccessKeyID: {
		key: "s3_access_key_id", env: "COFFER_S3_ACCESS_KEY_ID", secret: true,
		usage: "S3 access key ID (else the standard AWS chain: AWS_* variables, shared files, web identity, container and instance roles)",
		field: func(c *Config) any { return &c.S3AccessKeyID },
	},
	sS3SecretAccessKey: {
		key: "s3_secret_access_key", env: "COFFER_S3_SECRET_ACCESS_KEY", secret: true,
		usage: "its secret access key",
		field: func(c *Config) any { return &c.S3SecretAccessKey },
	},
	sS3SessionToken: {
		key: "s3_session_token", env: "COFFER_S3_SESSION_TOKEN", secret: true,
		usage: "its session token, for temporary credentials",
		field: func(c *Config) any { return &c.S3SessionToken },
	},
	sRegion: {
		key: "region", env: "COFFER_REGION", flag: "region", arg: "REGION",
		usage: "AWS region name reported in ARNs and hosts",
		field: func(c *Config) any { return &c.Region },
	},
	sAccountID: {
		key: "account_id", env: "COFFER_ACCOUNT_ID", flag: "account-id", arg: "ID",
		usage: "12-digit account ID",
		def:   "generated once, kept in the data directory",
		field: func(c *Config) any { return &c.AccountID },
	},
	sCreateOnPush: {
		key: "create_on_push", env: "COFFER_CREATE_ON_PUSH", flag: "create-on-push",
		usage: "create a repository on the first push to it",
		field: func(c *Config) any { return &c.CreateOnPush },
	},
	sInsecureAllowAnonymous: {
		key: "insecure_allow_anonymous", env: "COFFER_INSECURE_ALLOW_ANONYMOUS", flag: "insecure-allow-anonymous",
		usage: "accept unauthenticated /v2/ requests with full access (loopback listen only; for local testing)",
		field: func(c *Config) any { return &c.InsecureAllowAnonymous },
	},
	sRootKeyFile: {
		key: "root_key_file", env: "COFFER_ROOT_KEY_FILE", flag: "root-key-file", arg: "FILE",
		usage: "root key file",
		def:   "<data>/root.key",
		field: func(c *Config) any { return &c.RootKeyFile },
	},
	sRootKey: {
		key: "root_key", env: "COFFER_ROOT_KEY", secret: true,
		usage: "root key, base64 of 32 bytes; not together with root_key_file",
		field: func(c *Config) any { return &c.RootKey },
	},
	sLogLevel: {
		key: "log_level", env: "COFFER_LOG_LEVEL", flag: "log-level", arg: "LEVEL",
		usage: "debug, info, warn or error",
		field: func(c *Config) any { return &c.LogLevel },
	},
	sLogFormat: {
		key: "log_format", env: "COFFER_LOG_FORMAT", flag: "log-format", arg: "FORMAT",
		usage: "json or text",
		field: func(c *Config) any { return &c.LogFormat },
	},
	sPprof: {
		key: "pprof", env: "COFFER_PPROF", flag: "pprof", arg: "ADDR",
		usage: "serve net/http/pprof on this loopback host:port",
		def:   "off",
		field: func(c *Config) any { return &c.Pprof },
	},
	sShutdownTimeout: {
		key: "shutdown_timeout", env: "COFFER_SHUTDOWN_TIMEOUT", flag: "shutdown-timeout", arg: "DURATION",
		usage: "how long a graceful shutdown may take",
		field: func(c *Config) any { return &c.ShutdownTimeout },
	},
	sPublicEndpoint: {
		key: "public_endpoint", env: "COFFER_PUBLIC_ENDPOINT", flag: "public-endpoint",
		usage: "serve the default listener (--listen); false leaves only the configured endpoints",
		field: func(c *Config) any { return &c.PublicEndpoint },
	},
	sLifecycleInterval: {
		key: "lifecycle_interval", env: "COFFER_LIFECYCLE_INTERVAL", flag: "lifecycle-interval", arg: "DURATION",
		usage: "how often lifecycle policies are evaluated; 0 turns it off",
		field: func(c *Config) any { return &c.LifecycleInterval },
	},
	sGCInterval: {
		key: "gc_interval", env: "COFFER_GC_INTERVAL", flag: "gc-interval", arg: "DURATION",
		usage: "how often online garbage collection runs; 0 turns it off",
		field: func(c *Config) any { return &c.GCInterval },
	},
	sMetadataCacheTTL: {
		key: "metadata_cache_ttl", env: "COFFER_METADATA_CACHE_TTL", flag: "metadata-cache-ttl", arg: "DURATION",
		usage: "how long repository, tag and resource-policy lookups are cached in memory; writes by other processes (coffer gc, replicas) show within it; 0 turns caching off",
		field: func(c *Config) any { return &c.MetadataCacheTTL },
	},
	sInsecureHTTP: {
		key: "insecure_http", env: "COFFER_INSECURE_HTTP", flag: "insecure-http",
		usage: "serve plain HTTP on a non-loopback --listen (default: TLS with a certificate from the private CA)",
		field: func(c *Config) any { return &c.InsecureHTTP },
	},
	sTrustedProxies: {
		key: "trusted_proxies", env: "COFFER_TRUSTED_PROXIES", flag: "trusted-proxies", arg: "CIDRS",
		usage: "comma-separated CIDRs of proxies whose PROXY protocol header and X-Forwarded-For are believed, on every listener",
		def:   "none",
		field: func(c *Config) any { return &c.TrustedProxies },
	},
	sAuditRetentionDays: {
		key: "audit_retention_days", env: "COFFER_AUDIT_RETENTION_DAYS", flag: "audit-retention-days", arg: "DAYS",
		usage: "delete audit log and digest files older than this many days (the deletion is itself audited); 0 keeps all",
		field: func(c *Config) any { return &c.AuditRetentionDays },
	},
	sAuditWebhookURL: {
		key: "audit_webhook_url", env: "COFFER_AUDIT_WEBHOOK_URL", flag: "audit-webhook-url", arg: "URL",
		usage: "also POST every audit record to this URL ({\"Records\":[...]}; retried, bounded backlog)",
		field: func(c *Config) any { return &c.AuditWebhookURL },
	},
	sAuditDigestInterval: {
		key: "audit_digest_interval", env: "COFFER_AUDIT_DIGEST_INTERVAL", flag: "audit-digest-interval", arg: "DURATION",
		usage: "how often a signed digest file covers the audit log files sealed since the last one (CloudTrail: hourly); at least 1s",
		field: func(c *Config) any { return &c.AuditDigestInterval },
	},
	sAuditSyslogAddr: {
		key: "audit_syslog_addr", env: "COFFER_AUDIT_SYSLOG_ADDR", flag: "audit-syslog-addr", arg: "HOST:PORT",
		usage: "also send every audit record to this syslog collector (RFC 5424 over TCP)",
		field: func(c *Config) any { return &c.AuditSyslogAddr },
	},
	sQuotaMaxImages: {
		key: "quota_max_images", env: "COFFER_QUOTA_MAX_IMAGES", flag: "quota-max-images", arg: "N",
		usage: "default limit on the images (manifests) of each repository; a push over it fails (429 TOOMANYREQUESTS, LimitExceededException); 0: none; overrides per repository under quotas in the file",
		def:   "none",
		field: func(c *Config) any { return &c.QuotaMaxImages },
	},
	sQuotaMaxBytes: {
		key: "quota_max_bytes", env: "COFFER_QUOTA_MAX_BYTES", flag: "quota-max-bytes", arg: "SIZE",
		usage: "default limit on the bytes each repository stores (its distinct layers and configs plus manifests, before encryption), such as 10GiB or 500MB; empty or 0: none",
		def:   "none",
		field: func(c *Config) any { return &c.QuotaMaxBytes },
	},
	sAdminAccessKeyID: {
		key: "admin_access_key_id", env: "COFFER_ADMIN_ACCESS_KEY_ID", secret: true,
		usage: "access key ID of the administrator created on first start (else generated)",
		field: func(c *Config) any { return &c.AdminAccessKeyID },
	},
	sAdminSecretAccessKey: {
		key: "admin_secret_access_key", env: "COFFER_ADMIN_SECRET_ACCESS_KEY", secret: true,
		usage: "its secret access key",
		field: func(c *Config) any { return &c.AdminSecretAccessKey },
	},
}

// The config file itself is chosen by a flag or the environment only.
const (
	configFlag = "config"
	configEnv  = "COFFER_CONFIG"
)

// A Setting documents one configuration setting for help text.
type Setting struct {
	Key     string // YAML key; "" if the file cannot set it
	Env     string // environment variable
	Flag    string // flag name without dashes; "" if environment only
	Arg     string // placeholder for the flag's value; "" for booleans
	Default string // default, for display; "" if none or false
	Usage   string // one line
}

// Settings returns every setting Load reads, the config file first, in the
// order help text should list them.
func Settings() []Setting {
	out := []Setting{{
		Env: configEnv, Flag: configFlag, Arg: "FILE",
		Usage: "YAML config file (needs \"version: 1\")",
	}}
	d := Defaults()
	for _, s := range settings {
		key := s.key
		if s.secret {
			key = ""
		}
		def := s.def
		if def == "" {
			switch p := s.field(&d).(type) {
			case *string:
				def = *p
			case *bool:
				if *p {
					def = "true"
				}
			case *time.Duration:
				def = p.String()
			case *int:
				if *p != 0 {
					def = strconv.Itoa(*p)
				}
			}
		}
		out = append(out, Setting{Key: key, Env: s.env, Flag: s.flag, Arg: s.arg, Default: def, Usage: s.usage})
	}
	return out
}

// sourceKind says which source set a value.
type sourceKind uint8

const (
	fromDefault sourceKind = iota
	fromFile
	fromEnv
	fromFlag
)

// origin is where a value came from; line is the file line for fromFile.
type origin struct {
	kind sourceKind
	line int
}

// A SettingError is one problem with one setting. Load and Validate return
// them joined with errors.Join, one per problem. Messages never contain the
// root key.
type SettingError struct {
	// Setting is the setting's YAML key ("listen"), or "config" for
	// problems with the file as a whole.
	Setting string
	// Source says where the value came from: "flag --listen",
	// "env COFFER_LISTEN", "file coffer.yaml line 3" or "default".
	Source string
	Err    error
}

func (e *SettingError) Error() string {
	return fmt.Sprintf("%s (%s): %v", e.Setting, e.Source, e.Err)
}

func (e *SettingError) Unwrap() error { return e.Err }

// where describes the source of setting id's current value.
func (c Config) where(id settingID) string {
	s, o := settings[id], c.origin[id]
	switch o.kind {
	case fromFlag:
		return "flag --" + s.flag
	case fromEnv:
		return "env " + s.env
	case fromFile:
		return fileSource(c.File, o.line)
	default:
		return "default"
	}
}

func fileSource(path string, line int) string {
	if line > 0 {
		return fmt.Sprintf("file %s line %d", path, line)
	}
	return "file " + path
}

// problem returns a SettingError for setting id's current value.
func (c Config) problem(id settingID, format string, args ...any) error {
	return &SettingError{Setting: settings[id].key, Source: c.where(id), Err: fmt.Errorf(format, args...)}
}

// set parses raw into setting id's field and records its origin. On error
// the field and origin are left unchanged. The error never contains raw
// for a secret setting.
func (c *Config) set(id settingID, raw string, o origin) error {
	s := settings[id]
	switch p := s.field(c).(type) {
	case *string:
		*p = raw
	case *bool:
		b, err := parseBool(raw)
		if err != nil {
			return err
		}
		*p = b
	case *time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 30s or 1m30s", raw)
		}
		*p = d
	case *int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", raw)
		}
		*p = n
	default:
		panic(fmt.Sprintf("config: setting %s has field type %T", s.key, p))
	}
	c.origin[id] = o
	return nil
}

// parseBool accepts exactly true, false, 1 and 0.
func parseBool(s string) (bool, error) {
	switch s {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (want true, false, 1 or 0)", s)
}

// errSecretInFile is the message for a secret found in the config file.
var errSecretInFile = errors.New("secrets are not read from the config file; set them in the environment (" +
	settings[sRootKey].env + ", " + settings[sAdminAccessKeyID].env + ", " + settings[sAdminSecretAccessKey].env + ", " +
	settings[sS3AccessKeyID].env + ", " + settings[sS3SecretAccessKey].env + ", " + settings[sS3SessionToken].env + ")")

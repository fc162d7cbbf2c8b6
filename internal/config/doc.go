// Package config loads and validates Coffer's configuration.
//
// Every coffer subcommand (serve today; gc, audit, fsck and endpoints
// later) builds its Config the same way: it creates a flag.FlagSet, adds
// its own flags, and calls Load, which adds the shared flags and reads
// four sources, later ones winning:
//
//	default  <  file (--config / COFFER_CONFIG)  <  environment  <  flags
//
// # File format
//
// One YAML document, a mapping, at most 1 MiB:
//
//	version: 1                  # required; the only version this build reads
//	listen: 127.0.0.1:5000
//	data: /var/lib/coffer
//	region: us-east-1
//	account_id: "123456789012"
//	create_on_push: false
//	insecure_allow_anonymous: false
//	root_key_file: /etc/coffer/root.key
//	log_level: info
//	log_format: json
//	pprof: 127.0.0.1:6060
//	shutdown_timeout: 30s
//	metadata_dsn: postgres://coffer@db:5432/coffer   # empty: SQLite in data
//	storage: s3                 # fs (default) or s3
//	s3_bucket: acme-coffer
//	s3_endpoint: https://minio.internal:9000
//	s3_path_style: true
//
// Unknown and duplicate keys are errors. Booleans are YAML booleans
// (true/false); durations need a unit (30s, 1m30s). Relative paths are
// relative to the working directory.
//
// # Environment and flags
//
// Each setting has a COFFER_ variable and a flag (see Settings). An empty
// variable counts as unset. Booleans in the environment and in flags accept
// exactly true, false, 1 and 0; a boolean flag may be given bare
// (--create-on-push).
//
// # Secrets
//
// The S3 keys (COFFER_S3_ACCESS_KEY_ID, COFFER_S3_SECRET_ACCESS_KEY,
// COFFER_S3_SESSION_TOKEN) come only from the environment too, and a
// metadata_dsn with a password is accepted only from COFFER_METADATA_DSN;
// neither appears in messages or in Config's printed forms (the DSN shows
// without its password).
//
// The root key (COFFER_ROOT_KEY, base64 of 32 bytes) comes only from the
// environment: a root_key in the file is refused, and there is no flag,
// since command lines are visible to other users. The package never puts
// the key into an error, and Config's String, fmt and slog forms leave it
// out. What it trusts: the file and environment are the operator's; it
// does not read the root key file or touch the data directory.
//
// # Errors
//
// Load and Validate report every problem at once (errors.Join of
// *SettingError), each naming the setting and its source, e.g.
//
//	listen (flag --listen): "0.0.0.0" is not host:port
//	region (file /etc/coffer.yaml line 4): "US-EAST-1" is not a region name such as us-east-1
package config

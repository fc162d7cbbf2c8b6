package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"github.com/cofferhq/coffer/internal/endpoint"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrUsage marks a command line that the flag package could not parse.
// The flag package has already printed the problem and the usage on the
// flag set's output, so callers should only exit.
var ErrUsage = errors.New("invalid command line")

// maxFileSize bounds the config file Load reads.
const maxFileSize = 1 << 20

// flagValue is the flag.Value of every shared flag. It only keeps the raw
// text: Load converts it with the same code as environment values, so a bad
// flag value is reported together with every other problem instead of
// stopping the parse.
type flagValue struct {
	isBool bool
	raw    string
}

func (v *flagValue) String() string {
	if v == nil {
		return ""
	}
	return v.raw
}

func (v *flagValue) Set(s string) error { v.raw = s; return nil }

// IsBoolFlag lets boolean flags be given bare: --create-on-push.
func (v *flagValue) IsBoolFlag() bool { return v.isBool }

// RegisterFlags adds the shared flags (--config, --listen, --data, ...) to
// fs. Load calls it; call it yourself only to print a subcommand's help
// without loading. Calling it twice on one flag set is harmless, but a
// subcommand must not define flags with the same names.
func RegisterFlags(fs *flag.FlagSet) {
	if f := fs.Lookup(configFlag); f != nil {
		if _, ok := f.Value.(*flagValue); ok {
			return
		}
	}
	fs.Var(&flagValue{}, configFlag, "YAML config file (env "+configEnv+")")
	for _, s := range settings {
		if s.flag == "" {
			continue
		}
		_, isBool := s.field(&Config{}).(*bool)
		fs.Var(&flagValue{isBool: isBool}, s.flag, fmt.Sprintf("%s (env %s)", s.usage, s.env))
	}
}

// Load builds the configuration from a subcommand's arguments and the
// environment, and validates it. fs is the subcommand's flag set: add the
// subcommand's own flags to it first, then call Load, which registers the
// shared flags (RegisterFlags) and parses args; afterwards fs.Args() holds
// the positional arguments and the subcommand's flags hold their values.
//
// Precedence is flag > environment > file > default. The file is named by
// --config or COFFER_CONFIG; --config= (empty) means no file. An empty
// environment variable counts as unset. getenv is usually os.Getenv; nil
// means an empty environment.
//
// Errors: flag.ErrHelp for -h/-help; ErrUsage (wrapping the flag
// package's error) for a malformed command line; otherwise every problem
// found, each a *SettingError, joined with errors.Join. On error the
// returned Config is the zero value.
func Load(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	flags := make(map[string]string)
	fs.Visit(func(f *flag.Flag) {
		if v, ok := f.Value.(*flagValue); ok {
			flags[f.Name] = v.raw
		}
	})

	c := Defaults()
	var errs []error

	path, pathSource := "", ""
	if v, ok := flags[configFlag]; ok {
		path, pathSource = v, "flag --"+configFlag
	} else if v := getenv(configEnv); v != "" {
		path, pathSource = v, "env "+configEnv
	}
	if path != "" {
		errs = append(errs, c.loadFile(path, pathSource)...)
	}

	for id, s := range settings {
		v := getenv(s.env)
		if v == "" {
			continue
		}
		if err := c.set(settingID(id), v, origin{kind: fromEnv}); err != nil {
			errs = append(errs, &SettingError{Setting: s.key, Source: "env " + s.env, Err: err})
		}
	}
	for id, s := range settings {
		v, ok := flags[s.flag]
		if s.flag == "" || !ok {
			continue
		}
		if err := c.set(settingID(id), v, origin{kind: fromFlag}); err != nil {
			errs = append(errs, &SettingError{Setting: s.key, Source: "flag --" + s.flag, Err: err})
		}
	}

	errs = append(errs, c.problems()...)
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

// fileConfig is the config file's schema. Every field is a yaml.Node so
// that Load, not yaml.v3, converts values: the messages then name the
// setting, and a secret's value is never echoed in a decoding error.
// Absent keys leave a zero Node (Kind 0).
type fileConfig struct {
	Version                yaml.Node `yaml:"version"`
	Listen                 yaml.Node `yaml:"listen"`
	Data                   yaml.Node `yaml:"data"`
	MetadataDSN            yaml.Node `yaml:"metadata_dsn"`
	MetadataMaxConns       yaml.Node `yaml:"metadata_max_conns"`
	MetadataMinConns       yaml.Node `yaml:"metadata_min_conns"`
	Storage                yaml.Node `yaml:"storage"`
	S3Bucket               yaml.Node `yaml:"s3_bucket"`
	S3Region               yaml.Node `yaml:"s3_region"`
	S3Endpoint             yaml.Node `yaml:"s3_endpoint"`
	S3PathStyle            yaml.Node `yaml:"s3_path_style"`
	S3Prefix               yaml.Node `yaml:"s3_prefix"`
	S3ServerSideEncryption yaml.Node `yaml:"s3_server_side_encryption"`
	S3AbortUploadsAfter    yaml.Node `yaml:"s3_abort_uploads_after"`
	S3AccessKeyID          yaml.Node `yaml:"s3_access_key_id"`
	S3SecretAccessKey      yaml.Node `yaml:"s3_secret_access_key"`
	S3SessionToken         yaml.Node `yaml:"s3_session_token"`
	Region                 yaml.Node `yaml:"region"`
	AccountID              yaml.Node `yaml:"account_id"`
	CreateOnPush           yaml.Node `yaml:"create_on_push"`
	InsecureAllowAnonymous yaml.Node `yaml:"insecure_allow_anonymous"`
	RootKeyFile            yaml.Node `yaml:"root_key_file"`
	// RootKey is decoded only to refuse it with a clear message.
	RootKey         yaml.Node `yaml:"root_key"`
	LogLevel        yaml.Node `yaml:"log_level"`
	LogFormat       yaml.Node `yaml:"log_format"`
	Pprof           yaml.Node `yaml:"pprof"`
	ShutdownTimeout yaml.Node `yaml:"shutdown_timeout"`
	// Decoded only to refuse them with a clear message.
	AdminAccessKeyID     yaml.Node `yaml:"admin_access_key_id"`
	AdminSecretAccessKey yaml.Node `yaml:"admin_secret_access_key"`
	PublicEndpoint       yaml.Node `yaml:"public_endpoint"`
	LifecycleInterval    yaml.Node `yaml:"lifecycle_interval"`
	GCInterval           yaml.Node `yaml:"gc_interval"`
	MetadataCacheTTL     yaml.Node `yaml:"metadata_cache_ttl"`
	InsecureHTTP         yaml.Node `yaml:"insecure_http"`
	TrustedProxies       yaml.Node `yaml:"trusted_proxies"`
	AuditRetentionDays   yaml.Node `yaml:"audit_retention_days"`
	AuditWebhookURL      yaml.Node `yaml:"audit_webhook_url"`
	AuditSyslogAddr      yaml.Node `yaml:"audit_syslog_addr"`
	AuditDigestInterval  yaml.Node `yaml:"audit_digest_interval"`
	QuotaMaxImages       yaml.Node `yaml:"quota_max_images"`
	QuotaMaxBytes        yaml.Node `yaml:"quota_max_bytes"`
	// Endpoints is a list, decoded on its own (not a table setting).
	Endpoints yaml.Node `yaml:"endpoints"`
	// Quotas is a list of per-repository overrides (quotas.go).
	Quotas yaml.Node `yaml:"quotas"`
}

// nodes maps settings to their fields; a test checks the YAML tags agree
// with the settings table.
func (f *fileConfig) nodes() [numSettings]*yaml.Node {
	return [numSettings]*yaml.Node{
		sListen:                 &f.Listen,
		sData:                   &f.Data,
		sMetadataDSN:            &f.MetadataDSN,
		sMetadataMaxConns:       &f.MetadataMaxConns,
		sMetadataMinConns:       &f.MetadataMinConns,
		sStorage:                &f.Storage,
		sS3Bucket:               &f.S3Bucket,
		sS3Region:               &f.S3Region,
		sS3Endpoint:             &f.S3Endpoint,
		sS3PathStyle:            &f.S3PathStyle,
		sS3Prefix:               &f.S3Prefix,
		sS3ServerSideEncryption: &f.S3ServerSideEncryption,
		sS3AbortUploadsAfter:    &f.S3AbortUploadsAfter,
		sS3AccessKeyID:          &f.S3AccessKeyID,
		sS3SecretAccessKey:      &f.S3SecretAccessKey,
		sS3SessionToken:         &f.S3SessionToken,
		sRegion:                 &f.Region,
		sAccountID:              &f.AccountID,
		sCreateOnPush:           &f.CreateOnPush,
		sInsecureAllowAnonymous: &f.InsecureAllowAnonymous,
		sRootKeyFile:            &f.RootKeyFile,
		sRootKey:                &f.RootKey,
		sLogLevel:               &f.LogLevel,
		sLogFormat:              &f.LogFormat,
		sPprof:                  &f.Pprof,
		sShutdownTimeout:        &f.ShutdownTimeout,
		sAdminAccessKeyID:       &f.AdminAccessKeyID,
		sAdminSecretAccessKey:   &f.AdminSecretAccessKey,
		sPublicEndpoint:         &f.PublicEndpoint,
		sLifecycleInterval:      &f.LifecycleInterval,
		sGCInterval:             &f.GCInterval,
		sMetadataCacheTTL:       &f.MetadataCacheTTL,
		sInsecureHTTP:           &f.InsecureHTTP,
		sTrustedProxies:         &f.TrustedProxies,
		sAuditRetentionDays:     &f.AuditRetentionDays,
		sAuditWebhookURL:        &f.AuditWebhookURL,
		sAuditSyslogAddr:        &f.AuditSyslogAddr,
		sAuditDigestInterval:    &f.AuditDigestInterval,
		sQuotaMaxImages:         &f.QuotaMaxImages,
		sQuotaMaxBytes:          &f.QuotaMaxBytes,
	}
}

// fileVersion is the only config file format this build reads.
const fileVersion = 1

// loadFile applies the config file at path, named by source ("flag
// --config"), to c and returns every problem it finds.
func (c *Config) loadFile(path, source string) []error {
	data, err := readLimited(path)
	if err != nil {
		return []error{&SettingError{Setting: configFlag, Source: source, Err: err}}
	}
	c.File = path
	fileErr := func(setting string, line int, err error) error {
		return &SettingError{Setting: setting, Source: fileSource(path, line), Err: err}
	}

	var errs []error
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err = dec.Decode(&fc)
	var typeErr *yaml.TypeError
	switch {
	case errors.Is(err, io.EOF):
		return []error{fileErr("version", 0, fmt.Errorf("the file is empty; it needs at least \"version: %d\"", fileVersion))}
	case errors.As(err, &typeErr):
		// yaml.v3 reports every unknown key and still decodes the known
		// ones, so go on with those. After any other problem (duplicate
		// keys, a top level that is not a mapping) it decoded nothing:
		// stop, rather than add a misleading "version missing".
		decoded := true
		for _, msg := range typeErr.Errors {
			err, unknownKey := yamlProblem(path, msg)
			errs = append(errs, err)
			decoded = decoded && unknownKey
		}
		if !decoded {
			return errs
		}
	case err != nil:
		return []error{fileErr(configFlag, 0, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		errs = append(errs, fileErr(configFlag, extra.Line, errors.New("the file must hold exactly one YAML document")))
	}

	if v := fc.Version; v.Kind == 0 {
		errs = append(errs, fileErr("version", 0, fmt.Errorf("missing; the file must say \"version: %d\"", fileVersion)))
	} else if n, err := strconv.Atoi(v.Value); v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" || err != nil || n != fileVersion {
		errs = append(errs, fileErr("version", v.Line, fmt.Errorf("unsupported version %q; this build reads version %d", v.Value, fileVersion)))
	}

	if fc.Endpoints.Kind != 0 {
		eps, err := decodeEndpoints(&fc.Endpoints)
		if err != nil {
			errs = append(errs, fileErr("endpoints", fc.Endpoints.Line, err))
		}
		c.Endpoints = eps
	}
	if fc.Quotas.Kind != 0 {
		rules, err := decodeQuotas(&fc.Quotas)
		if err != nil {
			errs = append(errs, fileErr("quotas", fc.Quotas.Line, err))
		}
		c.Quotas = rules
	}
	for id, n := range fc.nodes() {
		if n.Kind == 0 {
			continue
		}
		s := settings[id]
		if s.secret {
			// Nothing of the node's value goes into the message.
			errs = append(errs, fileErr(s.key, n.Line, errSecretInFile))
			continue
		}
		if err := c.setNode(settingID(id), n); err != nil {
			errs = append(errs, fileErr(s.key, n.Line, err))
		}
	}
	return errs
}

// setNode applies one YAML value to setting id.
func (c *Config) setNode(id settingID, n *yaml.Node) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return errors.New("want a single value, not a list or a mapping")
	}
	o := origin{kind: fromFile, line: n.Line}
	switch settings[id].field(c).(type) {
	case *string:
		// Any scalar is text: account_id: 123456789012 is an int to
		// YAML but means the string. Null (key with no value) is "".
		v := n.Value
		if n.ShortTag() == "!!null" {
			v = ""
		}
		return c.set(id, v, o)
	case *bool:
		var b bool
		if n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			return fmt.Errorf("%q is not a boolean (want true or false)", n.Value)
		}
		return c.set(id, strconv.FormatBool(b), o)
	case *time.Duration:
		return c.set(id, n.Value, o)
	case *int:
		if n.ShortTag() != "!!int" {
			return fmt.Errorf("%q is not a whole number", n.Value)
		}
		return c.set(id, n.Value, o)
	}
	panic("config: unreachable")
}

var (
	unknownKeyRE   = regexp.MustCompile(`^line (\d+): field (.+) not found in type `)
	duplicateKeyRE = regexp.MustCompile(`^line (\d+): mapping key "(.*)" already defined at line (\d+)$`)
	notMappingRE   = regexp.MustCompile(`^line (\d+): cannot unmarshal \S+ .*into config\.fileConfig$`)
)

// yamlProblem turns one of yaml.v3's TypeError messages into a
// SettingError, rewording the common ones, which would otherwise mention
// this package's internal types. unknownKey reports whether msg is about
// an unknown key.
func yamlProblem(path, msg string) (err error, unknownKey bool) {
	if m := unknownKeyRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &SettingError{Setting: m[2], Source: fileSource(path, line), Err: errors.New("unknown key")}, true
	}
	if m := duplicateKeyRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &SettingError{Setting: m[2], Source: fileSource(path, line), Err: fmt.Errorf("duplicate key; first set at line %s", m[3])}, false
	}
	if m := notMappingRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &SettingError{Setting: configFlag, Source: fileSource(path, line), Err: errors.New("the top level must be a mapping of keys to values")}, false
	}
	return &SettingError{Setting: configFlag, Source: fileSource(path, 0), Err: errors.New(msg)}, false
}

// readLimited reads the file at path, refusing files over maxFileSize.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxFileSize)
	}
	return data, nil
}

// decodeEndpoints decodes the endpoints list strictly: unknown keys are
// errors, as everywhere in the file.
func decodeEndpoints(n *yaml.Node) ([]endpoint.Config, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, errors.New("want a list of endpoints")
	}
	raw, err := yaml.Marshal(n)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var eps []endpoint.Config
	err = dec.Decode(&eps)
	if err == nil {
		return eps, nil
	}
	// The list was re-encoded on its own: its line 1 is the file's n.Line.
	msg := lineRE.ReplaceAllStringFunc(err.Error(), func(m string) string {
		k, _ := strconv.Atoi(lineRE.FindStringSubmatch(m)[1])
		return fmt.Sprintf("line %d:", k+n.Line-1)
	})
	msg = strings.ReplaceAll(msg, "endpoint.Config", "endpoint")
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return eps, errors.New(msg) // known fields were decoded; validate them too
	}
	return nil, errors.New(msg)
}

var lineRE = regexp.MustCompile(`line (\d+):`)

package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cofferhq/coffer/internal/storage"
)

// Limits and defaults.
const (
	// DefaultPartSize is the multipart part size when Config.PartSize is 0.
	DefaultPartSize = 16 << 20
	// MinPartSize is S3's smallest part (all but the last).
	MinPartSize = 5 << 20
	// MaxPartSize is S3's largest part.
	MaxPartSize = 5 << 30
	// DefaultConcurrency is the number of part uploads one Writer keeps in
	// flight when Config.Concurrency is 0.
	DefaultConcurrency = 4
	// DefaultMaxRetries is the retry count when Config.MaxRetries is 0.
	DefaultMaxRetries = 5
	// DefaultMaxBackoff caps the delay between two attempts when
	// Config.MaxBackoff is 0.
	DefaultMaxBackoff = 10 * time.Second

	// maxParts is S3's limit on parts per upload: an object holds at most
	// maxParts*PartSize bytes.
	maxParts = 10000
	// maxKeyLen is S3's limit on a key, prefix included.
	maxKeyLen = 1024
	// cleanupTimeout bounds the AbortMultipartUpload a failed Commit sends
	// after its own context has ended.
	cleanupTimeout = 30 * time.Second
)

// Config configures a Driver.
type Config struct {
	// Bucket holds the objects; it must exist (New does not create it).
	Bucket string
	// Prefix, if set, is prepended to every key as "<Prefix>/<key>", so
	// several stores can share a bucket. Leading and trailing slashes are
	// ignored; the rest must be a valid storage key.
	Prefix string
	// Region signs requests; empty uses the standard chain (AWS_REGION,
	// shared config). Required in the end.
	Region string
	// Endpoint overrides the S3 endpoint ("http://127.0.0.1:7070",
	// "https://s3.example.com"); empty uses AWS's endpoint for Region.
	Endpoint string
	// PathStyle addresses the bucket in the path (endpoint/bucket/key)
	// instead of the host name (bucket.endpoint/key). Most S3-compatible
	// servers want path style.
	PathStyle bool
	// AccessKeyID, SecretAccessKey and SessionToken are static credentials.
	// With AccessKeyID empty the standard credential chain is used
	// (environment, shared files, web identity, container and EC2 roles).
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// ServerSideEncryption asks the bucket to encrypt objects at rest as
	// well: "" (the bucket's default) or "AES256" (SSE-S3). It is defence in
	// depth on top of Coffer's own envelope encryption, never instead.
	ServerSideEncryption string
	// PartSize is the multipart part size and the largest object written
	// with a single PUT: 0 means DefaultPartSize; MinPartSize to
	// MaxPartSize. Objects may hold up to 10,000 parts.
	PartSize int64
	// Concurrency is how many parts one Writer uploads at once (0 means
	// DefaultConcurrency). A Writer holds at most (Concurrency+1)*PartSize
	// bytes of buffers.
	Concurrency int
	// MaxRetries is how often a failed request is retried with
	// exponential backoff and full jitter: 0 means DefaultMaxRetries,
	// negative means never.
	MaxRetries int
	// MaxBackoff caps the delay between two attempts (0 means
	// DefaultMaxBackoff).
	MaxBackoff time.Duration
	// HTTPClient, if set, sends the S3 requests (custom TLS roots,
	// proxies, dialers); nil uses the SDK's default client, which honours
	// AWS_CA_BUNDLE. Credential providers keep the SDK's default client.
	HTTPClient *http.Client
}

// Driver stores objects in one S3 bucket under an optional prefix. It
// implements storage.Driver and is safe for concurrent use.
type Driver struct {
	client      *s3sdk.Client
	bucket      string
	base        string // "<Prefix>/" or ""
	sse         s3types.ServerSideEncryption
	partSize    int64
	concurrency int
	maxRetries  int
	backoff     backoff
	bufs        sync.Pool // *[]byte of len partSize
}

var _ storage.Driver = (*Driver)(nil)

// validate checks cfg, fills in defaults and reports every problem at once.
func (cfg *Config) validate() error {
	var errs []error
	if cfg.Bucket == "" {
		errs = append(errs, errors.New("bucket is empty"))
	}
	cfg.Prefix = strings.Trim(cfg.Prefix, "/")
	if cfg.Prefix != "" && !storage.ValidKey(cfg.Prefix) {
		errs = append(errs, fmt.Errorf("prefix %q is not a valid key path", cfg.Prefix))
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("endpoint %q is not an http(s) URL", cfg.Endpoint))
		}
	}
	if cfg.AccessKeyID != "" && cfg.SecretAccessKey == "" {
		errs = append(errs, errors.New("access key ID without a secret access key"))
	}
	if cfg.AccessKeyID == "" && (cfg.SecretAccessKey != "" || cfg.SessionToken != "") {
		errs = append(errs, errors.New("secret access key or session token without an access key ID"))
	}
	switch cfg.ServerSideEncryption {
	case "", string(s3types.ServerSideEncryptionAes256):
	default:
		errs = append(errs, fmt.Errorf("server-side encryption %q is not supported (want \"\" or \"AES256\")", cfg.ServerSideEncryption))
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < MinPartSize || cfg.PartSize > MaxPartSize {
		errs = append(errs, fmt.Errorf("part size %d outside [%d, %d]", cfg.PartSize, MinPartSize, int64(MaxPartSize)))
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > 64 {
		errs = append(errs, fmt.Errorf("concurrency %d outside [1, 64]", cfg.Concurrency))
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	case cfg.MaxRetries > 20:
		errs = append(errs, fmt.Errorf("max retries %d above 20", cfg.MaxRetries))
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("max backoff %v is negative", cfg.MaxBackoff))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("s3: config: %w", err)
	}
	return nil
}

// New validates cfg and returns a Driver. It sends no request: use Ping to
// check that the bucket is reachable and writable.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	bo := backoff{max: cfg.MaxBackoff}
	opts := []func(*awsconfig.LoadOptions) error{
		// Integrity of uploads comes from SigV4's signed payload hash (and
		// TLS); reads are authenticated by Coffer's envelope. Optional
		// CRC checksums would only cost CPU and break S3-compatible
		// servers that do not know them.
		awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = cfg.MaxRetries + 1
				o.MaxBackoff = cfg.MaxBackoff
				o.Backoff = bo
			})
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("s3: config: region is empty (set Region or AWS_REGION)")
	}
	client := s3sdk.NewFromConfig(awsCfg, func(o *s3sdk.Options) {
		o.UsePathStyle = cfg.PathStyle
		if cfg.HTTPClient != nil {
			// Set here rather than in LoadDefaultConfig, which would try
			// to fit AWS_CA_BUNDLE into it: the client brings its own TLS.
			o.HTTPClient = cfg.HTTPClient
		}
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	d := &Driver{
		client:      client,
		bucket:      cfg.Bucket,
		sse:         s3types.ServerSideEncryption(cfg.ServerSideEncryption),
		partSize:    cfg.PartSize,
		concurrency: cfg.Concurrency,
		maxRetries:  cfg.MaxRetries,
		backoff:     bo,
	}
	if cfg.Prefix != "" {
		d.base = cfg.Prefix + "/"
	}
	return d, nil
}

// objectKey validates key and maps it to its S3 key.
func (d *Driver) objectKey(key string) (string, error) {
	if !storage.ValidKey(key) {
		return "", fmt.Errorf("s3: key %q: %w", key, storage.ErrInvalidKey)
	}
	if len(d.base)+len(key) > maxKeyLen {
		return "", fmt.Errorf("s3: key %q: longer than %d bytes with the prefix: %w", key, maxKeyLen, storage.ErrInvalidKey)
	}
	return d.base + key, nil
}

// fail wraps err from operation op on key. If ctx has ended, the result
// wraps ctx.Err() as well, whatever shape the SDK gave the failure.
func fail(ctx context.Context, op, key string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("s3: %s %q: %w (%v)", op, key, cerr, err)
	}
	return fmt.Errorf("s3: %s %q: %w", op, key, err)
}

// errorCode returns the S3 error code and HTTP status of err, if any.
func errorCode(err error) (code string, status int) {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	return code, status
}

// isNotFound reports a missing key (never a missing bucket, which is a
// configuration error rather than a missing object).
func isNotFound(err error) bool {
	code, status := errorCode(err)
	switch code {
	case "NoSuchKey", "NotFound":
		return true
	case "NoSuchBucket":
		return false
	}
	return status == http.StatusNotFound
}

// isInvalidRange reports a range that starts at or past the object's end.
func isInvalidRange(err error) bool {
	code, status := errorCode(err)
	return code == "InvalidRange" || status == http.StatusRequestedRangeNotSatisfiable
}

// isNoSuchUpload reports a multipart upload that no longer exists.
func isNoSuchUpload(err error) bool {
	code, _ := errorCode(err)
	return code == "NoSuchUpload"
}

// Reader returns exactly the bytes [offset, offset+length) of the object; a
// negative length means to the end. It sends one ranged GET; only ranges a
// GET cannot express (empty ones, negative offsets) or a 416 answer cost a
// HEAD for the object's size.
func (d *Driver) Reader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	objKey, err := d.objectKey(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fail(ctx, "read", key, err)
	}
	if offset < 0 || length == 0 || (length > 0 && offset > math.MaxInt64-length) {
		// No GET expresses these: look at the size instead.
		return d.emptyRange(ctx, key, offset, length)
	}
	in := &s3sdk.GetObjectInput{Bucket: &d.bucket, Key: &objKey}
	if length > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	} else if offset > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	out, err := d.client.GetObject(ctx, in)
	switch {
	case err == nil:
	case isNotFound(err):
		return nil, fmt.Errorf("s3: read %q: %w", key, storage.ErrNotFound)
	case isInvalidRange(err):
		// The offset is at or past the end: fine only when it is exactly
		// the end and the caller asked for the rest.
		return d.emptyRange(ctx, key, offset, length)
	default:
		return nil, fail(ctx, "read", key, err)
	}
	r, err := bound(out, offset, length)
	if err != nil {
		out.Body.Close()
		return nil, fmt.Errorf("s3: read %q: %w", key, err)
	}
	return r, nil
}

// bound checks that a GET answered the range [offset, offset+length) (or
// [offset, end) for length < 0) and returns a reader of exactly it. A
// server that ignores Range (200 without Content-Range) is handled too.
func bound(out *s3sdk.GetObjectOutput, offset, length int64) (io.ReadCloser, error) {
	if out.ContentLength == nil {
		// Without a length nothing can be checked; only a whole-object
		// read can be passed on as it is.
		if out.ContentRange == nil && offset == 0 && length < 0 {
			return out.Body, nil
		}
		return nil, errors.New("response without Content-Length")
	}
	n := *out.ContentLength
	if out.ContentRange == nil {
		if offset+max(length, 0) > n {
			return nil, fmt.Errorf("range %d+%d past size %d: %w", offset, length, n, storage.ErrInvalidRange)
		}
		if _, err := io.CopyN(io.Discard, out.Body, offset); err != nil {
			return nil, err
		}
		if length < 0 {
			length = n - offset
		}
		return &body{Reader: io.LimitReader(out.Body, length), c: out.Body}, nil
	}
	first, last, size, err := parseContentRange(*out.ContentRange)
	if err != nil {
		return nil, err
	}
	switch {
	case first != offset:
		return nil, fmt.Errorf("server answered range %q for offset %d", *out.ContentRange, offset)
	case length > 0 && last != offset+length-1:
		return nil, fmt.Errorf("range %d+%d past size %d: %w", offset, length, size, storage.ErrInvalidRange)
	case length < 0 && last != size-1:
		return nil, fmt.Errorf("server answered range %q for %d-", *out.ContentRange, offset)
	case n != last-first+1:
		return nil, fmt.Errorf("content length %d does not match range %q", n, *out.ContentRange)
	}
	return out.Body, nil
}

// parseContentRange parses "bytes FIRST-LAST/SIZE".
func parseContentRange(s string) (first, last, size int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	rng, total, ok2 := strings.Cut(rest, "/")
	a, b, ok3 := strings.Cut(rng, "-")
	if !ok || !ok2 || !ok3 {
		return 0, 0, 0, fmt.Errorf("malformed Content-Range %q", s)
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	size, err3 := strconv.ParseInt(total, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || first < 0 || last < first || size <= last {
		return 0, 0, 0, fmt.Errorf("malformed Content-Range %q", s)
	}
	return first, last, size, nil
}

// emptyRange answers the reads a GET cannot: it looks up the size and
// returns an empty reader if [offset, offset+length) is an empty range
// inside the object, ErrNotFound or ErrInvalidRange otherwise.
func (d *Driver) emptyRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	info, err := d.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	empty := length == 0 || length < 0 && offset == info.Size
	if offset < 0 || offset > info.Size || !empty {
		return nil, fmt.Errorf("s3: read %q: range %d+%d outside size %d: %w", key, offset, length, info.Size, storage.ErrInvalidRange)
	}
	return io.NopCloser(bytes.NewReader(nil)), nil
}

// body is a bounded view of a response body.
type body struct {
	io.Reader
	c io.Closer
}

// Close closes the response body.
func (b *body) Close() error { return b.c.Close() }

// Stat describes a committed object with a HEAD request, or reports
// storage.ErrNotFound.
func (d *Driver) Stat(ctx context.Context, key string) (storage.Info, error) {
	objKey, err := d.objectKey(key)
	if err != nil {
		return storage.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.Info{}, fail(ctx, "stat", key, err)
	}
	out, err := d.client.HeadObject(ctx, &s3sdk.HeadObjectInput{Bucket: &d.bucket, Key: &objKey})
	if isNotFound(err) {
		return storage.Info{}, fmt.Errorf("s3: stat %q: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Info{}, fail(ctx, "stat", key, err)
	}
	return storage.Info{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// Delete removes the object. S3 deletes are idempotent: a missing key, or
// a key that is only a prefix of others, is not an error.
func (d *Driver) Delete(ctx context.Context, key string) error {
	objKey, err := d.objectKey(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fail(ctx, "delete", key, err)
	}
	_, err = d.client.DeleteObject(ctx, &s3sdk.DeleteObjectInput{Bucket: &d.bucket, Key: &objKey})
	if err != nil && !isNotFound(err) {
		return fail(ctx, "delete", key, err)
	}
	return nil
}

// Walk calls fn for every committed object whose key starts with prefix, in
// lexical key order (S3 lists keys in UTF-8 binary order, which is Go's
// string order), one ListObjectsV2 page at a time. Objects under the
// Driver's prefix whose names are not valid keys are skipped. A prefix that
// no valid key can start with is storage.ErrInvalidKey.
func (d *Driver) Walk(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if prefix != "" && !storage.ValidKey(prefix) && !storage.ValidKey(prefix+"x") {
		return fmt.Errorf("s3: walk prefix %q: %w", prefix, storage.ErrInvalidKey)
	}
	if err := ctx.Err(); err != nil {
		return fail(ctx, "walk", prefix, err)
	}
	p := s3sdk.NewListObjectsV2Paginator(d.client, &s3sdk.ListObjectsV2Input{
		Bucket: &d.bucket,
		Prefix: aws.String(d.base + prefix),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fail(ctx, "walk", prefix, err)
		}
		for _, obj := range page.Contents {
			if err := ctx.Err(); err != nil {
				return fail(ctx, "walk", prefix, err)
			}
			key, ok := strings.CutPrefix(aws.ToString(obj.Key), d.base)
			if !ok || !storage.ValidKey(key) {
				continue // not something this driver wrote (a Ping, a folder marker)
			}
			info := storage.Info{Key: key, Size: aws.ToInt64(obj.Size), ModTime: aws.ToTime(obj.LastModified)}
			if err := fn(info); err != nil {
				return err
			}
		}
	}
	return nil
}

// pingName starts the name of Ping's probe objects. The backslash makes it
// a name no valid key has, so Walk never reports a probe and no key is
// reserved.
const pingName = `\ping-`

// Ping writes and deletes a tiny probe object under the prefix, proving the
// bucket is reachable and writable with these credentials.
func (d *Driver) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fail(ctx, "ping", d.bucket, err)
	}
	key := d.base + pingName + rand.Text()
	_, err := d.client.PutObject(ctx, &s3sdk.PutObjectInput{
		Bucket:               &d.bucket,
		Key:                  &key,
		Body:                 bytes.NewReader([]byte("ping")),
		ContentLength:        aws.Int64(4),
		ServerSideEncryption: d.sse,
	})
	if err != nil {
		return fail(ctx, "ping", d.bucket, err)
	}
	if _, err := d.client.DeleteObject(ctx, &s3sdk.DeleteObjectInput{Bucket: &d.bucket, Key: &key}); err != nil {
		return fail(ctx, "ping", d.bucket, err)
	}
	return nil
}

// AbortStaleUploads aborts the multipart uploads under the Driver's prefix
// that were started more than olderThan ago, and returns how many it
// aborted. Writers that crashed or were never finished leave such uploads
// behind, and S3 bills their parts until they are aborted (a bucket
// lifecycle rule with AbortIncompleteMultipartUpload does the same job).
// olderThan must exceed the longest upload in progress: an aborted
// in-flight upload fails its Writer's Commit. An abort that races a part
// upload may leave the upload alive (S3 documents this too); the next run
// catches it. Uploads that vanish meanwhile are not errors; other failures
// are joined and returned with the count.
func (d *Driver) AbortStaleUploads(ctx context.Context, olderThan time.Duration) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fail(ctx, "abort stale uploads", d.base, err)
	}
	cutoff := time.Now().Add(-olderThan)
	in := &s3sdk.ListMultipartUploadsInput{Bucket: &d.bucket, Prefix: aws.String(d.base)}
	var (
		aborted int
		errs    []error
	)
	for {
		page, err := d.client.ListMultipartUploads(ctx, in)
		if err != nil {
			errs = append(errs, fail(ctx, "list multipart uploads", d.base, err))
			break
		}
		for _, u := range page.Uploads {
			if u.Initiated == nil || u.Initiated.After(cutoff) {
				continue
			}
			_, err := d.client.AbortMultipartUpload(ctx, &s3sdk.AbortMultipartUploadInput{
				Bucket: &d.bucket, Key: u.Key, UploadId: u.UploadId,
			})
			switch {
			case err == nil:
				aborted++
			case isNoSuchUpload(err) || isNotFound(err):
			default:
				errs = append(errs, fail(ctx, "abort multipart upload", aws.ToString(u.Key), err))
				if ctx.Err() != nil {
					return aborted, errors.Join(errs...)
				}
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			break
		}
		next := aws.ToString(page.NextKeyMarker)
		nextID := aws.ToString(page.NextUploadIdMarker)
		if next == aws.ToString(in.KeyMarker) && nextID == aws.ToString(in.UploadIdMarker) {
			errs = append(errs, errors.New("s3: list multipart uploads: pagination did not advance"))
			break
		}
		in.KeyMarker, in.UploadIdMarker = &next, &nextID
	}
	return aborted, errors.Join(errs...)
}

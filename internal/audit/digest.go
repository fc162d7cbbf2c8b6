package audit

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Digest is a digest file's content: CloudTrail's digest format, with
// Coffer's additions prefixed "coffer". A digest lists every log file
// sealed since the previous digest with its SHA-256, and chains to the
// previous digest by that file's SHA-256 and signature.
//
// The signature is ed25519 over CloudTrail's data-signing string
//
//	digestEndTime "\n" digestS3Bucket "/" digestS3Object "\n"
//	hex(SHA-256 of the uncompressed digest JSON) "\n" previousDigestSignature
//
// (previousDigestSignature is "null" for the first digest). It travels in
// the gzip header's comment as "signature=<hex>", where CloudTrail uses S3
// object metadata. Hash values (hashValue, previousDigestHashValue) are the
// SHA-256 of the files' bytes as stored, so every changed byte shows.
type Digest struct {
	AWSAccountID                string          `json:"awsAccountId"`
	DigestStartTime             string          `json:"digestStartTime"`
	DigestEndTime               string          `json:"digestEndTime"`
	DigestS3Bucket              string          `json:"digestS3Bucket"`
	DigestS3Object              string          `json:"digestS3Object"`
	DigestPublicKeyFingerprint  string          `json:"digestPublicKeyFingerprint"`
	DigestSignatureAlgorithm    string          `json:"digestSignatureAlgorithm"`
	NewestEventTime             *string         `json:"newestEventTime"`
	OldestEventTime             *string         `json:"oldestEventTime"`
	PreviousDigestS3Bucket      *string         `json:"previousDigestS3Bucket"`
	PreviousDigestS3Object      *string         `json:"previousDigestS3Object"`
	PreviousDigestHashValue     *string         `json:"previousDigestHashValue"`
	PreviousDigestHashAlgorithm *string         `json:"previousDigestHashAlgorithm"`
	PreviousDigestSignature     *string         `json:"previousDigestSignature"`
	LogFiles                    []DigestLogFile `json:"logFiles"`
	// DigestIntervalSeconds is the writer's digest interval, so that a
	// verifier can tell a trail that stopped from one cut short.
	DigestIntervalSeconds int64 `json:"cofferDigestIntervalSeconds"`
	// RetentionHorizon: files and digests older than this were deleted on
	// purpose (retention) and are not missing.
	RetentionHorizon *string `json:"cofferRetentionHorizon"`
	// TrailStopped marks the last digest of an orderly shutdown.
	TrailStopped bool `json:"cofferTrailStopped"`
}

// DigestLogFile is one log file in a digest.
type DigestLogFile struct {
	S3Bucket        string `json:"s3Bucket"`
	S3Object        string `json:"s3Object"`
	HashValue       string `json:"hashValue"`
	HashAlgorithm   string `json:"hashAlgorithm"`
	NewestEventTime string `json:"newestEventTime"`
	OldestEventTime string `json:"oldestEventTime"`
}

const (
	// bucket stands in for CloudTrail's S3 bucket: the audit directory.
	bucket          = "coffer-audit"
	hashAlgorithm   = "SHA-256"
	signatureAlgo   = "Ed25519"
	signaturePrefix = "signature="
)

// Fingerprint is the hex SHA-256 of a public key, as digests name it.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

func signingString(d *Digest, contentSHA256 string) []byte {
	prev := "null"
	if d.PreviousDigestSignature != nil {
		prev = *d.PreviousDigestSignature
	}
	return []byte(d.DigestEndTime + "\n" + d.DigestS3Bucket + "/" + d.DigestS3Object + "\n" + contentSHA256 + "\n" + prev)
}

// headState is the last digest written: the next one chains to it.
// state/head.json keeps it, so a deleted last digest is noticed.
type headState struct {
	Object    string    `json:"object"`
	SHA256    string    `json:"sha256"`
	Signature string    `json:"signature"`
	End       time.Time `json:"end"`
	Horizon   time.Time `json:"horizon,omitzero"`
}

func headPath(dir string) string { return filepath.Join(dir, stateDir, "head.json") }

func readHead(dir string) (headState, error) {
	var h headState
	data, err := os.ReadFile(headPath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return h, fmt.Errorf("%s: %w", headPath(dir), err)
	}
	return h, nil
}

// loadHead finds the digest to chain to: the one state/head.json names,
// or a newer one on disk that chains to it (a crash between writing a
// digest and recording it). A head digest that is missing is logged and
// still chained to, so verification reports its deletion.
func (sl *sealer) loadHead() error {
	s := sl.s
	h, err := readHead(s.cfg.Dir)
	if err != nil {
		return err
	}
	digests, err := listObjects(s.cfg.Dir, s.tr, digestKind, time.Time{}, time.Time{})
	if err != nil {
		return err
	}
	for i := len(digests) - 1; i >= 0; i-- {
		o := digests[i]
		if o.t.IsZero() {
			continue
		}
		if h.Object != "" && !o.t.After(h.End) {
			break
		}
		rd, err := readDigest(s.cfg.Dir, o.name)
		if err != nil {
			s.log.Error("audit: the newest digest file is unreadable; chaining to the recorded head", "digest", o.name, "error", err)
			break
		}
		prev := ""
		if rd.digest.PreviousDigestS3Object != nil {
			prev = *rd.digest.PreviousDigestS3Object
		}
		if h.Object != "" && prev != h.Object {
			s.log.Error("audit: a digest on disk does not chain to the recorded head; verification will report it",
				"digest", o.name, "head", h.Object)
			break
		}
		end, _ := parseTime(rd.digest.DigestEndTime)
		h = headState{Object: o.name, SHA256: rd.fileSHA256, Signature: rd.signature, End: end, Horizon: h.Horizon}
		if rd.digest.RetentionHorizon != nil {
			h.Horizon, _ = parseTime(*rd.digest.RetentionHorizon)
		}
		break
	}
	sl.head = h
	if h.Object == "" {
		return nil
	}
	rd, err := readDigest(s.cfg.Dir, h.Object)
	if err != nil {
		s.log.Error("audit: the last digest is missing or unreadable; the trail was tampered with and verification will report it",
			"digest", h.Object, "error", err)
		return nil
	}
	sl.crashed = !rd.digest.TrailStopped
	listed := map[string]bool{}
	for _, f := range rd.digest.LogFiles {
		listed[f.S3Object] = true
	}
	kept := sl.pending[:0]
	for _, p := range sl.pending {
		if !listed[p.Object] {
			kept = append(kept, p)
		}
	}
	sl.pending = kept
	return nil
}

// writeDigest writes the next digest: the files sealed since the last
// one, chained to it, signed.
func (sl *sealer) writeDigest(horizon time.Time, final bool) error {
	s := sl.s
	end := s.now().UTC().Truncate(time.Second)
	if !sl.head.End.IsZero() && !end.After(sl.head.End) {
		end = sl.head.End.Add(time.Second)
	}
	start := sl.head.End
	if start.IsZero() {
		start = s.started
		if start.After(end) {
			start = end
		}
	}
	if horizon.Before(sl.head.Horizon) {
		horizon = sl.head.Horizon
	}
	obj, file, head, err := buildDigest(digestInput{account: s.cfg.AccountID, region: s.cfg.Region, key: s.cfg.SigningKey,
		head: sl.head, start: start, end: end, interval: s.cfg.DigestInterval, horizon: horizon, final: final, files: sl.pending})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.tmpDir, filepath.Join(s.cfg.Dir, filepath.FromSlash(obj)), file, 0o600); err != nil {
		return fmt.Errorf("write digest: %w", err)
	}
	sl.head = head
	sl.pending = nil
	hb, _ := json.Marshal(sl.head)
	var errs []error
	if err := writeFileAtomic(s.tmpDir, headPath(s.cfg.Dir), hb, 0o600); err != nil {
		errs = append(errs, fmt.Errorf("record digest head: %w", err))
	}
	if err := sl.journal.Truncate(0); err != nil {
		errs = append(errs, fmt.Errorf("reset journal: %w", err))
	} else if err := sl.journal.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("reset journal: %w", err))
	}
	return errors.Join(errs...)
}

// digestInput is what one digest covers and chains to.
type digestInput struct {
	account, region string
	key             ed25519.PrivateKey
	head            headState // the previous digest; zero for the first
	start, end      time.Time
	interval        time.Duration
	horizon         time.Time
	final           bool
	files           []journalLine // the log files, in the order sealed
}

// buildDigest returns a digest's object name, its file (gzip of the
// digest JSON, the signature in the gzip header) and the head it becomes.
func buildDigest(in digestInput) (obj string, file []byte, head headState, err error) {
	obj = digestObject(in.account, in.region, in.end)
	d := &Digest{
		AWSAccountID:               in.account,
		DigestStartTime:            formatTime(in.start),
		DigestEndTime:              formatTime(in.end),
		DigestS3Bucket:             bucket,
		DigestS3Object:             obj,
		DigestPublicKeyFingerprint: Fingerprint(in.key.Public().(ed25519.PublicKey)),
		DigestSignatureAlgorithm:   signatureAlgo,
		LogFiles:                   []DigestLogFile{},
		DigestIntervalSeconds:      int64(in.interval / time.Second),
		TrailStopped:               in.final,
	}
	if in.head.Object != "" {
		b, a := bucket, hashAlgorithm
		o, h, sig := in.head.Object, in.head.SHA256, in.head.Signature
		d.PreviousDigestS3Bucket, d.PreviousDigestS3Object = &b, &o
		d.PreviousDigestHashValue, d.PreviousDigestHashAlgorithm, d.PreviousDigestSignature = &h, &a, &sig
	}
	if !in.horizon.IsZero() {
		hz := formatTime(in.horizon)
		d.RetentionHorizon = &hz
	}
	var oldest, newest string
	for _, p := range in.files {
		d.LogFiles = append(d.LogFiles, DigestLogFile{S3Bucket: bucket, S3Object: p.Object, HashValue: p.SHA256,
			HashAlgorithm: hashAlgorithm, NewestEventTime: p.Newest, OldestEventTime: p.Oldest})
		if p.Oldest != "" && (oldest == "" || p.Oldest < oldest) {
			oldest = p.Oldest
		}
		if p.Newest > newest {
			newest = p.Newest
		}
	}
	if oldest != "" {
		d.OldestEventTime, d.NewestEventTime = &oldest, &newest
	}
	content, err := json.Marshal(d)
	if err != nil {
		return "", nil, headState{}, err
	}
	csum := sha256.Sum256(content)
	sig := ed25519.Sign(in.key, signingString(d, hex.EncodeToString(csum[:])))
	file, err = gzipWithComment(content, signaturePrefix+hex.EncodeToString(sig))
	if err != nil {
		return "", nil, headState{}, err
	}
	fsum := sha256.Sum256(file)
	head = headState{Object: obj, SHA256: hex.EncodeToString(fsum[:]), Signature: hex.EncodeToString(sig), End: in.end, Horizon: in.horizon}
	return obj, file, head, nil
}

func gzipWithComment(content []byte, comment string) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Comment = comment
	if _, err := zw.Write(content); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// readDigestResult is a digest file as read from disk.
type readDigestResult struct {
	digest     Digest
	content    []byte // uncompressed JSON
	signature  string // hex, from the gzip header
	fileSHA256 string // of the bytes on disk
}

// errTruncated marks a gzip stream that ends early.
var errTruncated = errors.New("file is truncated")

func readDigest(dir, obj string) (*readDigestResult, error) {
	raw, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(obj)))
	if err != nil {
		return nil, err
	}
	return parseDigest(raw)
}

func parseDigest(raw []byte) (*readDigestResult, error) {
	br := bytes.NewReader(raw)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, gzipError(err)
	}
	zr.Multistream(false)
	content, err := io.ReadAll(io.LimitReader(zr, 64<<20))
	if err != nil {
		return nil, gzipError(err)
	}
	if br.Len() > 0 {
		return nil, errors.New("trailing data after the digest's gzip stream")
	}
	r := &readDigestResult{content: content}
	sum := sha256.Sum256(raw)
	r.fileSHA256 = hex.EncodeToString(sum[:])
	sig, ok := strings.CutPrefix(zr.Header.Comment, signaturePrefix)
	if !ok {
		return r, errors.New("no signature in the gzip header")
	}
	r.signature = sig
	dec := json.NewDecoder(bytes.NewReader(content))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r.digest); err != nil {
		return r, fmt.Errorf("not a digest: %w", err)
	}
	return r, nil
}

func gzipError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w (%v)", errTruncated, err)
	}
	return err
}

// verifySignature checks a digest's signature with pub.
func (r *readDigestResult) verifySignature(pub ed25519.PublicKey) bool {
	sig, err := hex.DecodeString(r.signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return false
	}
	sum := sha256.Sum256(r.content)
	return ed25519.Verify(pub, signingString(&r.digest, hex.EncodeToString(sum[:])), sig)
}

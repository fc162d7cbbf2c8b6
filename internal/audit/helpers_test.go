package audit

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
)

const (
	testAccount = "111122223333"
	testRegion  = "us-east-1"
)

var (
	keyOnce  sync.Once
	testPriv ed25519.PrivateKey
)

// testKey is a fixed signing key for the package's tests.
func testKey() ed25519.PrivateKey {
	keyOnce.Do(func() {
		seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
		testPriv = ed25519.NewKeyFromSeed(seed)
	})
	return testPriv
}

func testPub() ed25519.PublicKey { return testKey().Public().(ed25519.PublicKey) }

func newTestStore(t testing.TB, dir string, mod func(*Config)) *Store {
	t.Helper()
	cfg := Config{Dir: dir, Region: testRegion, AccountID: testAccount, SigningKey: testKey()}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewStore(cfg)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	return s
}

// testInfo is the security context of a varied request n.
func testInfo(n int) *auth.Info {
	repo := fmt.Sprintf("team/app-%d", n%7)
	arn := "arn:aws:ecr:us-east-1:111122223333:repository/" + repo
	info := &auth.Info{
		RequestID: fmt.Sprintf("req-%06d", n),
		Time:      time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC).Add(time.Duration(n) * time.Millisecond),
		SourceIP:  netip.MustParseAddr("192.0.2.10"),
		UserAgent: "aws-cli/1.0 test",
		Principal: auth.Principal{Type: "IAMUser", ARN: "arn:aws:iam::111122223333:user/alice", AccountID: testAccount,
			PrincipalID: "AIDAALICE", UserName: "alice", AccessKeyID: "AKIAALICE0000000000" + fmt.Sprint(n%2)},
		Resources: []string{arn},
		Params:    map[string]any{"repositoryName": repo, "registryId": testAccount},
	}
	switch n % 4 {
	case 0:
		info.Action, info.EventName = "ecr:PutImage", "PutImage"
		info.Params["imageTag"] = "v1"
	case 1:
		info.Action, info.EventName = "ecr:BatchGetImage", "BatchGetImage"
	case 2:
		info.Action, info.EventName = "ecr:DescribeRepositories", "DescribeRepositories"
	case 3:
		info.Action, info.EventName = "ecr:DeleteRepository", "DeleteRepository"
		info.ErrorCode, info.ErrorMessage = "RepositoryNotEmptyException", "The repository cannot be deleted because it still contains images"
	}
	return info
}

// trailRecords reads every record of every sealed log file under dir.
func trailRecords(t testing.TB, dir string) []Event {
	t.Helper()
	var out []Event
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.Contains(p, string(filepath.Separator)+logKind+string(filepath.Separator)) || !strings.HasSuffix(p, objectSuffix) {
			return nil
		}
		recs, err := readLogFile(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, r := range recs {
			var ev Event
			if err := json.Unmarshal(r, &ev); err != nil {
				return err
			}
			out = append(out, ev)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func gunzip(t testing.TB, raw []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustVerify(t testing.TB, dir string) *Report {
	t.Helper()
	rep, err := Verify(dir, testPub(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK() {
		for _, p := range rep.Problems {
			t.Errorf("problem: %s", p)
		}
		t.Fatalf("Verify found %d problems", len(rep.Problems))
	}
	return rep
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func hexString(b []byte) string { return hex.EncodeToString(b) }

func testingGOMAXPROCS() int { return runtime.GOMAXPROCS(0) }

func mkdirTemp() (string, error) { return os.MkdirTemp("", "audit-bench-") }

// readSegment reads a segment file: its header and the records of its
// valid prefix (at most limit bytes when limit > 0), and the prefix's
// length.
func readSegment(p string, limit int64) (segHeader, [][]byte, int64, error) {
	var r segmentReader
	return r.read(p, limit)
}

// buildLogFile is a CloudTrail log file: gzip of {"Records":[...]}, at
// gzip's fastest level: sealing runs beside the requests, and records
// (repetitive JSON) compress about 18:1 even so (20:1 at the default).
// It is written as gzip members of about 64 KiB of records each
// (buildLogFileBlocks), so that LookupEvents reads a record by inflating
// one member.
func buildLogFile(recs [][]byte) ([]byte, error) {
	data, _, err := buildLogFileBlocks(recs)
	return data, err
}

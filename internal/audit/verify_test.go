package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	baseTrailOnce sync.Once
	baseTrailDir  string
	baseTrailErr  error
)

var trailStart = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// baseTrail builds, once, a trail of three runs an hour apart (fake
// clock), each with four log files and a final digest.
func baseTrail(t *testing.T) string {
	t.Helper()
	baseTrailOnce.Do(func() {
		dir, err := os.MkdirTemp("", "audit-base-trail-")
		if err != nil {
			baseTrailErr = err
			return
		}
		baseTrailDir = dir
		var offset atomic.Int64
		clock := func() time.Time { return trailStart.Add(time.Duration(offset.Load())) }
		n := 0
		for run := range 3 {
			offset.Store(int64(time.Duration(run) * time.Hour))
			s, err := NewStore(Config{Dir: dir, Region: testRegion, AccountID: testAccount, SigningKey: testKey(),
				FileMaxEvents: 5, Now: clock})
			if err != nil {
				baseTrailErr = err
				return
			}
			for range 20 {
				info := testInfo(n)
				info.Time = clock()
				if err := s.Record(context.Background(), info, Outcome{Status: 200}); err != nil {
					baseTrailErr = err
					return
				}
				n++
				offset.Add(int64(time.Second))
			}
			if err := s.Close(); err != nil {
				baseTrailErr = err
				return
			}
		}
	})
	if baseTrailErr != nil {
		t.Fatal(baseTrailErr)
	}
	return baseTrailDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if baseTrailDir != "" {
		os.RemoveAll(baseTrailDir)
	}
	if lookupStore != nil {
		lookupStore.Close()
	}
	if lookupDir != "" {
		os.RemoveAll(lookupDir)
	}
	os.Exit(code)
}

// copyTrail copies the base trail to a fresh directory.
func copyTrail(t *testing.T) string {
	t.Helper()
	src, dst := baseTrail(t), t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func objects(t *testing.T, dir, kind string) []string {
	t.Helper()
	objs, err := listObjects(dir, trail{testAccount, testRegion}, kind, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range objs {
		out = append(out, filepath.Join(dir, filepath.FromSlash(o.name)))
	}
	return out
}

func rel(dir, p string) string {
	r, _ := filepath.Rel(dir, p)
	return filepath.ToSlash(r)
}

func rewriteDigest(t *testing.T, p string, edit func(string) string) {
	t.Helper()
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	content, _ := io.ReadAll(zr)
	out, err := gzipWithComment([]byte(edit(string(content))), zr.Header.Comment)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func swap(t *testing.T, a, b string) {
	t.Helper()
	tmp := a + ".swap"
	if err := os.Rename(a, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(b, a); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, b); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyCleanTrail(t *testing.T) {
	t.Parallel()
	dir := copyTrail(t)
	rep := mustVerify(t, dir)
	if rep.DigestsChecked != 3 || rep.LogFilesChecked != 12 || len(rep.Pending) != 0 || rep.Expired != 0 {
		t.Fatalf("report = %+v", rep)
	}
}

// TestVerifyTamper tampers with one copy of the trail per case and checks
// that Verify names the damage and the first bad file.
func TestVerifyTamper(t *testing.T) {
	t.Parallel()
	type tamper func(t *testing.T, dir string, logs, digests []string) (kind, first string)
	cases := []struct {
		name string
		do   tamper
	}{
		{"modify log file", func(t *testing.T, dir string, logs, _ []string) (string, string) {
			raw, _ := os.ReadFile(logs[5])
			raw[len(raw)/2] ^= 0x40
			os.WriteFile(logs[5], raw, 0o600)
			return ProblemModified, logs[5]
		}},
		{"modify log file, recompressed", func(t *testing.T, dir string, logs, _ []string) (string, string) {
			raw, _ := os.ReadFile(logs[6])
			content := strings.Replace(string(gunzip(t, raw)), `"PutImage"`, `"GetAuthorizationToken"`, 1)
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write([]byte(content))
			zw.Close()
			os.WriteFile(logs[6], buf.Bytes(), 0o600)
			return ProblemModified, logs[6]
		}},
		{"delete log file", func(t *testing.T, dir string, logs, _ []string) (string, string) {
			os.Remove(logs[3])
			return ProblemDeleted, logs[3]
		}},
		{"insert log file", func(t *testing.T, dir string, logs, _ []string) (string, string) {
			raw, _ := os.ReadFile(logs[4])
			name := strings.Replace(logs[4], filepath.Base(logs[4])[len(filepath.Base(logs[4]))-24:], "AAAAAAAAAAAAAAAA.json.gz", 1)
			os.WriteFile(name, raw, 0o600)
			return ProblemInserted, name
		}},
		{"insert forged log file", func(t *testing.T, dir string, logs, _ []string) (string, string) {
			data, _ := buildLogFile([][]byte{[]byte(`{"eventVersion":"1.11","eventName":"Nothing"}`)})
			name := filepath.Join(dir, filepath.FromSlash(logObject(testAccount, testRegion, trailStart.Add(-time.Hour), "ForgedForgedForg")))
			os.MkdirAll(filepath.Dir(name), 0o700)
			os.WriteFile(name, data, 0o600)
			return ProblemInserted, name
		}},
		{"reorder log files", func(t *testing.T, dir string, logs, _ []string) (string, string) {
			swap(t, logs[1], logs[2])
			first := logs[1]
			if logs[2] < first {
				first = logs[2]
			}
			return ProblemReordered, first
		}},
		{"truncate log file", func(t *testing.T, dir string, logs, _ []string) (string, string) {
			raw, _ := os.ReadFile(logs[7])
			os.WriteFile(logs[7], raw[:len(raw)/2], 0o600)
			return ProblemTruncated, logs[7]
		}},
		{"modify digest", func(t *testing.T, dir string, _, digests []string) (string, string) {
			rewriteDigest(t, digests[1], func(s string) string {
				return strings.Replace(s, `"hashValue":"`, `"hashValue":"00`, 1)
			})
			return ProblemModified, digests[1]
		}},
		{"delete digest", func(t *testing.T, dir string, _, digests []string) (string, string) {
			os.Remove(digests[1])
			return ProblemDeleted, ""
		}},
		{"delete newest digest", func(t *testing.T, dir string, _, digests []string) (string, string) {
			os.Remove(digests[2])
			return ProblemDeleted, ""
		}},
		{"insert digest", func(t *testing.T, dir string, _, digests []string) (string, string) {
			raw, _ := os.ReadFile(digests[1])
			name := strings.Replace(digests[1], "T1", "T0", 1)
			name = strings.Replace(name, "_20260314T10", "_20260314T09", 1)
			os.WriteFile(name, raw, 0o600)
			return ProblemInserted, name
		}},
		{"insert forged digest", func(t *testing.T, dir string, _, digests []string) (string, string) {
			other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
			rd, _ := readDigest(dir, rel(dir, digests[0]))
			d := rd.digest
			end := trailStart.Add(30 * time.Minute)
			d.DigestEndTime = formatTime(end)
			d.DigestS3Object = digestObject(testAccount, testRegion, end)
			content, _ := jsonMarshal(d)
			sum := sha256Hex(content)
			sig := ed25519.Sign(other, signingString(&d, sum))
			file, _ := gzipWithComment(content, signaturePrefix+hexString(sig))
			name := filepath.Join(dir, filepath.FromSlash(d.DigestS3Object))
			os.WriteFile(name, file, 0o600)
			return ProblemModified, name
		}},
		{"reorder digests", func(t *testing.T, dir string, _, digests []string) (string, string) {
			swap(t, digests[0], digests[1])
			return ProblemReordered, digests[0]
		}},
		{"truncate digest", func(t *testing.T, dir string, _, digests []string) (string, string) {
			raw, _ := os.ReadFile(digests[2])
			os.WriteFile(digests[2], raw[:len(raw)-20], 0o600)
			return ProblemTruncated, digests[2]
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := copyTrail(t)
			logs, digests := objects(t, dir, logKind), objects(t, dir, digestKind)
			if len(logs) != 12 || len(digests) != 3 {
				t.Fatalf("base trail has %d logs and %d digests", len(logs), len(digests))
			}
			kind, first := tc.do(t, dir, logs, digests)
			rep, err := Verify(dir, testPub(), time.Time{}, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatal("Verify found nothing wrong")
			}
			found := false
			for _, p := range rep.Problems {
				t.Logf("%s", p)
				if p.Kind == kind {
					found = true
				}
			}
			if !found {
				t.Errorf("no %s problem reported", kind)
			}
			if first != "" && rep.FirstBad().Object != rel(dir, first) {
				t.Errorf("first bad = %s, want %s", rep.FirstBad().Object, rel(dir, first))
			}
		})
	}
}

// TestVerifyRange: a damaged file outside [from, to] is not reported,
// inside it is.
func TestVerifyRange(t *testing.T) {
	t.Parallel()
	dir := copyTrail(t)
	logs := objects(t, dir, logKind)
	raw, _ := os.ReadFile(logs[0]) // first run, 09:00
	raw[len(raw)/2] ^= 1
	os.WriteFile(logs[0], raw, 0o600)
	rep, err := Verify(dir, testPub(), trailStart.Add(time.Hour), time.Time{})
	if err != nil || !rep.OK() || rep.LogFilesChecked != 8 {
		t.Fatalf("Verify from the second run = %+v, %v; want OK over 8 files", rep, err)
	}
	rep, err = Verify(dir, testPub(), trailStart, trailStart.Add(30*time.Minute))
	if err != nil || rep.OK() || rep.LogFilesChecked != 4 {
		t.Fatalf("Verify of the first run = %+v, %v; want a problem", rep, err)
	}
}

func TestVerifyWrongKey(t *testing.T) {
	t.Parallel()
	dir := copyTrail(t)
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)).Public().(ed25519.PublicKey)
	rep, err := Verify(dir, other, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(rep.FirstBad().Detail, "names key") {
		t.Fatalf("Verify with another key = %+v", rep.Problems)
	}
}

// TestVerifyPendingAndLiveTrail: files written since the newest digest
// are pending, not problems; a live store's trail verifies.
func TestVerifyPendingAndLiveTrail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newTestStore(t, dir, func(c *Config) { c.FileMaxEvents = 2 })
	defer s.Close()
	for i := range 9 {
		if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := s.Record(context.Background(), testInfo(i), Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	var rep *Report
	for time.Now().Before(deadline) {
		rep = mustVerify(t, dir)
		if len(rep.Pending) == 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rep.LogFilesChecked != 5 || len(rep.Pending) != 3 {
		t.Fatalf("report = %+v; want 5 checked and 3 pending", rep)
	}
}

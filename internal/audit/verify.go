package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Problem kinds.
const (
	ProblemModified  = "modified"
	ProblemDeleted   = "deleted"
	ProblemInserted  = "inserted"
	ProblemReordered = "reordered"
	ProblemTruncated = "truncated"
)

// Problem is one finding of Verify.
type Problem struct {
	Kind string
	// Object is the file's path relative to the audit directory.
	Object string
	// Time is the time in the file's name, which orders problems.
	Time   time.Time
	Detail string
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s: %s", p.Kind, p.Object, p.Detail) }

// Report is the result of Verify.
type Report struct {
	Trails          int
	DigestsChecked  int
	LogFilesChecked int
	// Problems in the order of the files' times; the first is the
	// earliest bad file.
	Problems []Problem
	// Pending are log files not yet covered by a digest (written since
	// the newest one): not verifiable yet, not a problem.
	Pending []string
	// Unverified are log files that no valid digest lists but that a bad
	// or missing digest would have: the digest's problem is reported, and
	// their integrity is unknown.
	Unverified []string
	// Expired counts files missing because retention deleted them
	// (older than a signed retention horizon).
	Expired int
	// NewestDigest is the newest valid digest and NewestDigestEnd its end.
	NewestDigest    string
	NewestDigestEnd time.Time
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// FirstBad returns the earliest problem, or nil.
func (r *Report) FirstBad() *Problem {
	if len(r.Problems) == 0 {
		return nil
	}
	return &r.Problems[0]
}

// Verify checks the trail under dir (the audit directory) against the
// public key: every digest's signature and its link to the previous one
// (hash and signature), and every log file a digest lists against its
// SHA-256. It reports each modified, deleted, inserted, reordered or
// truncated log file or digest, and a trail whose digests stop early.
// from and to (zero for open) restrict the log files checked to those
// whose names' times fall in [from, to]; the digest chain is always
// checked whole. It only reads, so it runs beside a live server.
func Verify(dir string, pub ed25519.PublicKey, from, to time.Time) (*Report, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("audit: verify needs an ed25519 public key")
	}
	trs, err := trails(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	rep := &Report{Trails: len(trs)}
	now := time.Now()
	if !to.IsZero() && to.Before(now) {
		now = to
	}
	for _, tr := range trs {
		if err := verifyTrail(dir, tr, pub, from, to, now, rep); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(rep.Problems, func(a, b Problem) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Object, b.Object)
	})
	return rep, nil
}

type checkedDigest struct {
	object
	rd     *readDigestResult
	usable bool
}

func verifyTrail(dir string, tr trail, pub ed25519.PublicKey, from, to, now time.Time, rep *Report) error {
	problem := func(kind, obj string, detail string, args ...any) {
		t, _, _ := objectTime(obj)
		rep.Problems = append(rep.Problems, Problem{Kind: kind, Object: obj, Time: t, Detail: fmt.Sprintf(detail, args...)})
	}
	objs, err := listObjects(dir, tr, digestKind, time.Time{}, time.Time{})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	byName := map[string]*checkedDigest{}
	var all []*checkedDigest
	for _, o := range objs {
		if o.t.IsZero() {
			problem(ProblemInserted, o.name, "not a digest file name")
			continue
		}
		d := &checkedDigest{object: o}
		all = append(all, d)
		byName[o.name] = d
		rd, err := readDigest(dir, o.name)
		switch {
		case errors.Is(err, errTruncated):
			problem(ProblemTruncated, o.name, "the digest file is truncated")
			continue
		case err != nil:
			problem(ProblemModified, o.name, "the digest file is unreadable: %v", err)
			continue
		}
		d.rd = rd
		if !rd.verifySignature(pub) {
			detail := "the signature does not verify: the digest was modified or forged"
			if rd.digest.DigestPublicKeyFingerprint != Fingerprint(pub) {
				detail += fmt.Sprintf(" (it names key %.16s…, not the key given)", rd.digest.DigestPublicKeyFingerprint)
			}
			problem(ProblemModified, o.name, "%s", detail)
			continue
		}
		d.usable = true
	}
	// A valid digest under another name was moved or copied.
	for _, d := range all {
		if !d.usable || d.rd.digest.DigestS3Object == d.name {
			continue
		}
		d.usable = false
		orig := d.rd.digest.DigestS3Object
		if o := byName[orig]; o != nil && o.rd != nil && o.rd.digest.DigestS3Object == d.name {
			problem(ProblemReordered, d.name, "holds the digest %s (digests were swapped)", orig)
		} else if o != nil {
			problem(ProblemInserted, d.name, "is a copy of the digest %s", orig)
		} else {
			problem(ProblemReordered, d.name, "is the digest %s, renamed", orig)
		}
	}
	var horizon time.Time
	for _, d := range all {
		if d.usable && d.rd.digest.RetentionHorizon != nil {
			if h, err := parseTime(*d.rd.digest.RetentionHorizon); err == nil && h.After(horizon) {
				horizon = h
			}
		}
	}
	// bad holds the times of digests that are unusable or missing: the
	// log files they would list are unverified, not inserted.
	var bad, times []time.Time
	for _, d := range all {
		times = append(times, d.t)
		if !d.usable {
			bad = append(bad, d.t)
		}
	}
	for _, d := range all {
		if p := d.rd; d.usable && p.digest.PreviousDigestS3Object != nil && byName[*p.digest.PreviousDigestS3Object] == nil {
			if t, _, ok := objectTime(*p.digest.PreviousDigestS3Object); ok {
				times = append(times, t)
				bad = append(bad, t)
			}
		}
	}
	slices.SortFunc(times, time.Time.Compare)
	underBadDigest := func(t time.Time) bool {
		// The digest that lists a file is one of the first two written
		// after the minute in its name.
		i, _ := slices.BinarySearchFunc(times, t, time.Time.Compare)
		for j := i; j < len(times) && j < i+2; j++ {
			if slices.ContainsFunc(bad, times[j].Equal) {
				return true
			}
		}
		return false
	}
	expired := func(obj string) bool {
		t, _, ok := objectTime(obj)
		return ok && t.Before(horizon)
	}

	// The chain.
	var chain []*checkedDigest
	for _, d := range all {
		if d.usable {
			chain = append(chain, d)
		}
	}
	var prev *checkedDigest
	for i, d := range chain {
		dg := &d.rd.digest
		rep.DigestsChecked++
		switch p := dg.PreviousDigestS3Object; {
		case p == nil:
			if i > 0 {
				problem(ProblemInserted, d.name, "starts a new chain although the digest %s precedes it", prev.name)
			}
		case prev != nil && *p == prev.name:
			if dg.PreviousDigestHashValue == nil || *dg.PreviousDigestHashValue != prev.rd.fileSHA256 {
				problem(ProblemModified, prev.name, "its bytes differ from the ones the next digest %s sealed", d.name)
			} else if dg.PreviousDigestSignature == nil || *dg.PreviousDigestSignature != prev.rd.signature {
				problem(ProblemModified, prev.name, "its signature differs from the one the next digest %s sealed", d.name)
			}
			if dg.DigestStartTime != prev.rd.digest.DigestEndTime {
				problem(ProblemModified, d.name, "starts at %s but the previous digest ends at %s", dg.DigestStartTime, prev.rd.digest.DigestEndTime)
			}
		default:
			target := byName[*p]
			switch {
			case target == nil && expired(*p):
				rep.Expired++
			case target == nil:
				problem(ProblemDeleted, *p, "the digest is missing (the digest %s chains to it)", d.name)
			case !target.usable:
				// Reported already.
			default:
				problem(ProblemReordered, d.name, "chains to %s, but other digests come between them", *p)
			}
		}
		prev = d
	}
	if prev != nil {
		end, _ := parseTime(prev.rd.digest.DigestEndTime)
		if end.After(rep.NewestDigestEnd) {
			rep.NewestDigest, rep.NewestDigestEnd = prev.name, end
		}
		interval := time.Duration(prev.rd.digest.DigestIntervalSeconds) * time.Second
		if !prev.rd.digest.TrailStopped && interval > 0 && end.Add(2*interval+time.Minute).Before(now) {
			problem(ProblemTruncated, prev.name, "no digest after this one although one was due every %s: "+
				"the trail was cut short, or the server stopped without a final digest", interval)
		}
	}
	// The writer's record of its newest digest catches the deletion of the
	// last ones.
	if h, err := readHead(dir); err == nil && h.Object != "" && strings.HasPrefix(h.Object, tr.account+"/"+digestKind+"/"+tr.region+"/") {
		if d := byName[h.Object]; d == nil && !expired(h.Object) {
			problem(ProblemDeleted, h.Object, "the newest digest the writer recorded is missing")
		} else if d != nil && d.rd != nil && d.usable && d.rd.fileSHA256 != h.SHA256 {
			problem(ProblemModified, h.Object, "its bytes differ from the ones the writer recorded")
		}
	}

	// Log files.
	type listing struct{ hash, digest string }
	listed := map[string]listing{}
	byHash := map[string]string{}
	for _, d := range chain {
		for _, f := range d.rd.digest.LogFiles {
			if l, dup := listed[f.S3Object]; dup {
				problem(ProblemInserted, f.S3Object, "listed twice, in %s and %s", l.digest, d.name)
				continue
			}
			listed[f.S3Object] = listing{f.HashValue, d.name}
			byHash[f.HashValue] = f.S3Object
		}
	}
	inRange := func(t time.Time) bool {
		return (from.IsZero() || !t.Before(from.Truncate(time.Minute))) && (to.IsZero() || !t.After(to))
	}
	names := make([]string, 0, len(listed))
	for n := range listed {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		t, isDigest, ok := objectTime(n)
		if !ok || isDigest || !strings.HasPrefix(n, tr.account+"/"+logKind+"/"+tr.region+"/") || strings.Contains(n, "..") {
			problem(ProblemModified, n, "a digest lists this impossible log file name")
			continue
		}
		if !inRange(t) {
			continue
		}
		l := listed[n]
		raw, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(n)))
		switch {
		case errors.Is(err, fs.ErrNotExist) && expired(n):
			rep.Expired++
			continue
		case errors.Is(err, fs.ErrNotExist):
			problem(ProblemDeleted, n, "the log file is missing (listed in %s)", l.digest)
			continue
		case err != nil:
			problem(ProblemModified, n, "the log file is unreadable: %v", err)
			continue
		}
		rep.LogFilesChecked++
		sum := sha256.Sum256(raw)
		got := hex.EncodeToString(sum[:])
		if got == l.hash {
			continue
		}
		if other, ok := byHash[got]; ok && other != n {
			problem(ProblemReordered, n, "holds the content of the log file %s", other)
		} else if _, err := parseLogFile(raw); errors.Is(err, errTruncated) {
			problem(ProblemTruncated, n, "the log file is truncated")
		} else {
			problem(ProblemModified, n, "the SHA-256 differs from the one in %s", l.digest)
		}
	}
	pending := map[string]bool{}
	if lines, err := readJournal(filepath.Join(dir, stateDir, "journal")); err == nil {
		for _, l := range lines {
			if l.Op == "sealed" {
				pending[l.Object] = true
			}
		}
	}
	files, err := listObjects(dir, tr, logKind, from, to)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	newest := rep.NewestDigestEnd.Truncate(time.Minute)
	for _, o := range files {
		switch {
		case o.t.IsZero():
			problem(ProblemInserted, o.name, "not a log file name")
		case !inRange(o.t):
		case listed[o.name].digest != "":
		case pending[o.name] || !o.t.Before(newest):
			rep.Pending = append(rep.Pending, o.name)
		case underBadDigest(o.t):
			rep.Unverified = append(rep.Unverified, o.name)
		default:
			problem(ProblemInserted, o.name, "no digest lists this log file")
		}
	}
	return nil
}

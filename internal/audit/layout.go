package audit

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The trail's directory layout (CloudTrail's S3 key layout, relative to
// the audit directory; "objects" below are these slash-separated paths):
//
//	<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz
//	<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/<account>_CloudTrail-Digest_<region>_coffer_<region>_<YYYYMMDDTHHmmssZ>.json.gz
//	state/                 the writer's own: lock, WAL segments, journal, head, index
const (
	logKind      = "CloudTrail"
	digestKind   = "CloudTrail-Digest"
	trailName    = "coffer"
	stateDir     = "state"
	logTimeFmt   = "20060102T1504Z"
	digestTimeFm = "20060102T150405Z"
	objectSuffix = ".json.gz"
)

func dayPath(t time.Time) string { return t.UTC().Format("2006/01/02") }

// logObject names the log file sealed at t.
func logObject(account, region string, t time.Time, unique string) string {
	t = t.UTC()
	return path.Join(account, logKind, region, dayPath(t),
		fmt.Sprintf("%s_%s_%s_%s_%s%s", account, logKind, region, t.Format(logTimeFmt), unique, objectSuffix))
}

// digestObject names the digest file that ends at end.
func digestObject(account, region string, end time.Time) string {
	end = end.UTC()
	return path.Join(account, digestKind, region, dayPath(end),
		fmt.Sprintf("%s_%s_%s_%s_%s_%s%s", account, digestKind, region, trailName, region, end.Format(digestTimeFm), objectSuffix))
}

// objectTime returns the time in a log or digest file's name, and whether
// the name is one of the two forms.
func objectTime(name string) (t time.Time, digest, ok bool) {
	base := strings.TrimSuffix(path.Base(name), objectSuffix)
	if len(base) == len(path.Base(name)) {
		return time.Time{}, false, false
	}
	f := strings.Split(base, "_")
	switch {
	case len(f) == 5 && f[1] == logKind:
		t, err := time.Parse(logTimeFmt, f[3])
		return t, false, err == nil
	case len(f) == 6 && f[1] == digestKind:
		t, err := time.Parse(digestTimeFm, f[5])
		return t, true, err == nil
	}
	return time.Time{}, false, false
}

// trail is one account and region under an audit directory.
type trail struct{ account, region string }

// trails lists the account/region pairs that have log or digest files.
func trails(dir string) ([]trail, error) {
	accts, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	seen := map[trail]bool{}
	var out []trail
	for _, a := range accts {
		if !a.IsDir() || !isDigits(a.Name()) {
			continue
		}
		for _, kind := range []string{logKind, digestKind} {
			regions, err := os.ReadDir(filepath.Join(dir, a.Name(), kind))
			if err != nil {
				continue
			}
			for _, r := range regions {
				tr := trail{a.Name(), r.Name()}
				if r.IsDir() && !seen[tr] {
					seen[tr] = true
					out = append(out, tr)
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b trail) int { return strings.Compare(a.account+"/"+a.region, b.account+"/"+b.region) })
	return out, nil
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// listObjects returns the objects of one kind of a trail, sorted by the
// time in their names (then by name), whose day directories lie within
// [from-1 day, to+1 day] (zero bounds are open). Names that are not of
// the kind's form are returned too, as strays with a zero time, for the
// verifier to report.
func listObjects(dir string, tr trail, kind string, from, to time.Time) ([]object, error) {
	root := filepath.Join(dir, tr.account, kind, tr.region)
	var out []object
	lo, hi := "", ""
	if !from.IsZero() {
		lo = dayPath(from.AddDate(0, 0, -1))
	}
	if !to.IsZero() {
		hi = dayPath(to.AddDate(0, 0, 1))
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			// Prune day directories outside the window.
			if strings.Count(rel, "/") == 2 && ((lo != "" && rel < lo) || (hi != "" && rel > hi)) {
				return fs.SkipDir
			}
			return nil
		}
		obj := path.Join(tr.account, kind, tr.region, rel)
		t, isDigest, ok := objectTime(obj)
		if !ok || isDigest != (kind == digestKind) {
			out = append(out, object{name: obj})
			return nil
		}
		out = append(out, object{name: obj, t: t})
		return nil
	})
	slices.SortFunc(out, func(a, b object) int {
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out, err
}

type object struct {
	name string
	t    time.Time
}

const uniqueAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newUnique returns the 16-character random part of a log file's name.
func newUnique() string {
	var b [16]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = uniqueAlphabet[int(b[i])%len(uniqueAlphabet)]
	}
	return string(b[:])
}

// syncDir makes a directory's entries (a create, rename or remove) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirAllSync creates dir and its missing parents (0700) and makes each
// new entry durable in its parent.
func mkdirAllSync(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSync(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// writeFileAtomic makes data appear at final complete or not at all: it
// writes a temporary file in tmpDir (same file system), syncs it, renames
// it into place and syncs the directory.
func writeFileAtomic(tmpDir, final string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(tmpDir, "tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := mkdirAllSync(filepath.Dir(final)); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	ok = true
	return syncDir(filepath.Dir(final))
}

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func parseTime(s string) (time.Time, error) { return time.Parse(timeFormat, s) }

func segmentName(created time.Time, unique string) string {
	return fmt.Sprintf("%020d-%s.wal", created.UnixNano(), unique)
}

// segmentUnique returns the unique part of a segment's file name.
func segmentUnique(name string) (created int64, unique string, ok bool) {
	base, found := strings.CutSuffix(name, ".wal")
	if !found {
		return 0, "", false
	}
	ns, u, found := strings.Cut(base, "-")
	if !found {
		return 0, "", false
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	return n, u, err == nil && len(u) == 16
}

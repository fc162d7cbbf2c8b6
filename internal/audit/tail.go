package audit

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// TailOptions configure Tail.
type TailOptions struct {
	// Since, when set, first prints the records with an eventTime at or
	// after it; otherwise only records written from now on are printed.
	Since time.Time
	// Follow keeps printing new records until ctx ends.
	Follow bool
	// Poll is how often new records are looked for; 0 means 250 ms.
	Poll time.Duration
}

// Tail writes the trail's records under dir to w as JSON lines, as they
// become durable: it reads the write-ahead segments of the open log file
// as well as the sealed log files, and only reads, so it runs beside a
// live server.
func Tail(ctx context.Context, dir string, w io.Writer, opt TailOptions) error {
	if opt.Poll <= 0 {
		opt.Poll = 250 * time.Millisecond
	}
	t := &tailer{dir: dir, w: w, since: opt.Since, segs: map[string]*tailSeg{}, seen: map[string]bool{}}
	if err := t.start(); err != nil {
		return err
	}
	if !opt.Follow {
		return nil
	}
	tick := time.NewTicker(opt.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := t.poll(); err != nil {
			return err
		}
	}
}

type tailer struct {
	dir   string
	w     io.Writer
	since time.Time
	segs  map[string]*tailSeg // by unique
	// seen holds the uniques of the log files printed (or present at
	// start). A segment whose log file was taken whole (it was born and
	// sealed between two looks at the segments) is not read again while
	// its file lingers.
	seen map[string]bool

	// afterList, if set, runs between start's listing of the log files
	// and its reading of the segments: tests seal a segment there.
	afterList func()
}

type tailSeg struct {
	name    string
	offset  int64
	printed int
	header  bool
}

func (t *tailer) segDir() string { return filepath.Join(t.dir, stateDir, "segments") }

func (t *tailer) start() error {
	from := t.since
	if from.IsZero() {
		from = time.Now().AddDate(0, 0, -1)
	}
	files, err := t.logFiles(from)
	if err != nil {
		return err
	}
	if err := t.takeFiles(files, !t.since.IsZero()); err != nil {
		return err
	}
	if t.afterList != nil {
		t.afterList()
	}
	if err := t.readSegments(!t.since.IsZero()); err != nil {
		return err
	}
	// A segment sealed after the listing above and before the segments
	// were read is in neither: its log file is new now. (Its records are
	// printed after those of newer segments; none is lost or repeated.)
	if files, err = t.logFiles(from); err != nil {
		return err
	}
	return t.takeFiles(files, !t.since.IsZero())
}

// takeFiles marks the log files not seen yet, and not being read from
// their segment, as seen, printing them if print.
func (t *tailer) takeFiles(files []string, print bool) error {
	for _, f := range files {
		u := fileUnique(f)
		if t.seen[u] {
			continue
		}
		if _, live := t.segs[u]; live {
			continue // printed from its segment, then from the rest of its file
		}
		t.seen[u] = true
		if print {
			if err := t.printFile(f, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *tailer) poll() error {
	if err := t.readSegments(true); err != nil {
		return err
	}
	files, err := t.logFiles(time.Now().AddDate(0, 0, -1))
	if err != nil {
		return err
	}
	return t.takeFiles(files, true)
}

// readSegments prints the new records of every segment; a segment that
// is gone was sealed, and the rest of its records come from its log file.
func (t *tailer) readSegments(print bool) error {
	ents, err := os.ReadDir(t.segDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	present := map[string]bool{}
	var names []string
	for _, e := range ents {
		if _, u, ok := segmentUnique(e.Name()); ok {
			present[u] = true
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for u := range t.segs {
		if !present[u] {
			if err := t.sealed(u, print); err != nil {
				return err
			}
		}
	}
	for _, n := range names {
		_, u, _ := segmentUnique(n)
		s := t.segs[u]
		if s == nil && t.seen[u] {
			continue // sealed already, and its log file printed whole
		}
		if s == nil {
			s = &tailSeg{name: n}
			t.segs[u] = s
		}
		recs, err := s.read(filepath.Join(t.segDir(), n))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// Sealed meanwhile: its log file exists (it is written
				// before the segment goes).
				if err := t.sealed(u, print); err != nil {
					return err
				}
				continue
			}
			return err
		}
		for _, r := range recs {
			s.printed++
			if print {
				if err := t.print(r); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// sealed finishes the segment u, which is gone: the records after those
// printed from it come from its log file.
func (t *tailer) sealed(u string, print bool) error {
	s := t.segs[u]
	delete(t.segs, u)
	files, err := t.logFiles(time.Now().AddDate(0, 0, -2))
	if err != nil {
		return err
	}
	for _, f := range files {
		if fileUnique(f) == u && !t.seen[u] {
			t.seen[u] = true
			if print {
				if err := t.printFile(f, s.printed); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// read returns the complete frames written since the last read. It reads
// in chunks and stops at the first incomplete frame, so the zero-filled
// tail of a preallocated segment (spare.go) is not read at every poll.
func (s *tailSeg) read(p string) ([][]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]byte
	buf := make([]byte, tailChunk)
	for {
		n, rerr := f.ReadAt(buf, s.offset)
		if rerr != nil && rerr != io.EOF {
			return nil, rerr
		}
		data := buf[:n]
		frames, valid := parseFrames(data)
		for _, fr := range frames {
			out = append(out, slices.Clone(fr))
		}
		s.offset += int64(valid)
		if n < len(buf) {
			break // the end of the file: what is left is incomplete
		}
		rest := data[valid:]
		if len(rest) < frameHeader {
			continue // the buffer ended at a frame boundary or in a header
		}
		l := int(binary.BigEndian.Uint32(rest))
		if l == 0 || l > maxFrame || frameHeader+l <= len(rest) {
			break // the zero tail, or a frame still being written
		}
		if frameHeader+l > len(buf) {
			buf = make([]byte, frameHeader+l) // a frame longer than the buffer
		}
	}
	if !s.header && len(out) > 0 {
		s.header = true
		out = out[1:]
	}
	return out, nil
}

// tailChunk is how much of a segment tail reads at a time.
const tailChunk = 256 << 10

// logFiles lists the log files of every trail from the day of from on.
func (t *tailer) logFiles(from time.Time) ([]string, error) {
	trs, err := trails(t.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, tr := range trs {
		objs, err := listObjects(t.dir, tr, logKind, from, time.Time{})
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if !o.t.IsZero() {
				out = append(out, o.name)
			}
		}
	}
	return out, nil
}

// printFile prints the records of a log file after the first skip.
func (t *tailer) printFile(obj string, skip int) error {
	recs, err := readLogFile(filepath.Join(t.dir, filepath.FromSlash(obj)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // retention took it
		}
		return fmt.Errorf("audit: %s: %w", obj, err)
	}
	for i, r := range recs {
		if i < skip {
			continue
		}
		if err := t.print(r); err != nil {
			return err
		}
	}
	return nil
}

func (t *tailer) print(rec []byte) error {
	if !t.since.IsZero() {
		var e struct {
			EventTime string `json:"eventTime"`
		}
		if json.Unmarshal(rec, &e) == nil {
			if et, err := parseTime(e.EventTime); err == nil && et.Before(t.since.Truncate(time.Second)) {
				return nil
			}
		}
	}
	if _, err := t.w.Write(append(append([]byte(nil), rec...), '\n')); err != nil {
		return err
	}
	return nil
}

// fileUnique is the unique part of a log file's name.
func fileUnique(obj string) string {
	base := strings.TrimSuffix(filepath.Base(obj), objectSuffix)
	return base[strings.LastIndexByte(base, '_')+1:]
}

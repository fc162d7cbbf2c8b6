package audit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestSegmentReaderReused: the sealer's segmentReader, its buffer kept
// from one segment to the next, reads each as a fresh reader does, and
// right: a torn last frame, a preallocated tail and a limit end the
// records.
func TestSegmentReaderReused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	written := map[string][][]byte{} // the records of each segment
	segment := func(name string, n int, tail []byte) string {
		h, _ := json.Marshal(segHeader{Format: segmentFormat, Unique: newUnique(), Created: benchStart})
		data := appendFrame(nil, h)
		p := filepath.Join(dir, name)
		for i := range n {
			rec := benchEntry(i).data
			written[p] = append(written[p], rec)
			data = appendFrame(data, rec)
		}
		if err := os.WriteFile(p, append(data, tail...), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	big := segment("big.wal", 200, nil)
	torn := segment("torn.wal", 7, appendFrame(nil, []byte(`{"torn":true}`))[:12])
	prealloc := segment("prealloc.wal", 3, make([]byte, 4096))
	fi, err := os.Stat(big)
	if err != nil {
		t.Fatal(err)
	}
	var r segmentReader
	for _, c := range []struct {
		p       string
		limit   int64
		records int // -1: as a fresh reader finds
	}{{big, 0, 200}, {torn, 0, 7}, {big, fi.Size() - 10, 199}, {prealloc, 0, 3}, {big, fi.Size(), 200}, {torn, 100, -1}} {
		wantHdr, wantRecs, wantValid, wantErr := readSegment(c.p, c.limit)
		hdr, recs, valid, err := r.read(c.p, c.limit)
		if hdr != wantHdr || !reflect.DeepEqual(recs, wantRecs) || valid != wantValid || err != wantErr {
			t.Fatalf("%s (limit %d): %d records, valid %d, %v; a fresh reader: %d, %d, %v",
				filepath.Base(c.p), c.limit, len(recs), valid, err, len(wantRecs), wantValid, wantErr)
		}
		if c.records >= 0 && (err != nil || len(recs) != c.records) {
			t.Fatalf("%s (limit %d): %d records, %v; want %d", filepath.Base(c.p), c.limit, len(recs), err, c.records)
		}
		for i, rec := range recs {
			if string(rec) != string(written[c.p][i]) {
				t.Fatalf("%s record %d = %s", filepath.Base(c.p), i, rec)
			}
		}
	}
	if _, _, _, err := r.read(filepath.Join(dir, "missing.wal"), 0); !os.IsNotExist(err) {
		t.Fatalf("a missing segment: %v", err)
	}
}

package audit

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A preallocated segment's zero tail ends its valid prefix: a recovery
// reading the whole file gets exactly the records written, and a torn
// frame followed by zeros is cut off.
func TestSpareSegmentRecovery(t *testing.T) {
	dir := t.TempDir()
	tmp, segs := filepath.Join(dir, "tmp"), filepath.Join(dir, "segments")
	for _, d := range []string{tmp, segs} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	sp := newSpares(tmp, slog.New(slog.DiscardHandler))
	defer sp.close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sp.mu.Lock()
		ready := sp.ready != nil
		sp.mu.Unlock()
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no spare segment after 10s")
		}
		time.Sleep(time.Millisecond)
	}
	hdr := segHeader{Format: segmentFormat, Unique: newUnique(), Created: time.Now().UTC()}
	seg, err := createSegment(segs, hdr, sp)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(seg.path); err != nil || fi.Size() != spareMin {
		t.Fatalf("segment from a spare: size %v, %v; want the preallocated %d", fi.Size(), err, spareMin)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) > 1 {
		t.Fatalf("state/tmp holds %d files; want at most the next spare", len(ents))
	}
	recs := [][]byte{[]byte(`{"eventID":"1"}`), []byte(`{"eventID":"2"}`)}
	var buf []byte
	for _, r := range recs {
		buf = appendFrame(buf, r)
	}
	if err := seg.write(buf); err != nil {
		t.Fatal(err)
	}
	durable := seg.size
	// A torn frame: its header and half its payload.
	torn := appendFrame(nil, []byte(`{"eventID":"3","torn":true}`))
	if _, err := seg.f.WriteAt(torn[:len(torn)-8], seg.size); err != nil {
		t.Fatal(err)
	}
	seg.close()

	got, frames, valid, err := readSegment(seg.path, 0)
	if err != nil || got.Unique != hdr.Unique {
		t.Fatalf("readSegment: header %+v, %v", got, err)
	}
	if valid != durable || len(frames) != len(recs) {
		t.Fatalf("valid prefix %d bytes, %d records; want %d bytes, %d records", valid, len(frames), durable, len(recs))
	}
	for i := range recs {
		if !bytes.Equal(frames[i], recs[i]) {
			t.Errorf("record %d = %s, want %s", i, frames[i], recs[i])
		}
	}
}

func TestSpareSizing(t *testing.T) {
	p := &spares{size: spareMin}
	for _, c := range []struct{ seen, want int64 }{
		{0, spareMin},
		{100, spareMin},
		{3 << 20, 4 << 20},   // 3 MiB + 25 %, rounded up to MiB
		{16 << 20, 20 << 20}, // 16 MiB + 25 %
		{1 << 30, spareMax},  // bounded
	} {
		p.observe(c.seen)
		if p.size != c.want {
			t.Errorf("after a %d-byte segment the spare is %d bytes; want %d", c.seen, p.size, c.want)
		}
	}
}

// tail reads a preallocated segment up to its zero tail, a frame longer
// than its read chunk included, and picks up where it stopped.
func TestTailReadsPreallocatedSegment(t *testing.T) {
	p := filepath.Join(t.TempDir(), "seg.wal")
	big := bytes.Repeat([]byte("x"), tailChunk+1000)
	data := appendFrame(nil, []byte(`{"format":"h"}`))
	data = appendFrame(data, big)
	data = appendFrame(data, []byte(`{"n":2}`))
	valid := len(data)
	if err := os.WriteFile(p, append(data, make([]byte, 1<<20)...), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &tailSeg{}
	recs, err := s.read(p)
	if err != nil || len(recs) != 2 || !bytes.Equal(recs[0], big) || string(recs[1]) != `{"n":2}` {
		t.Fatalf("read: %d records, %v", len(recs), err)
	}
	if s.offset != int64(valid) {
		t.Fatalf("offset %d, want %d (the end of the last frame)", s.offset, valid)
	}
	// A frame written later into the zero tail.
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(appendFrame(nil, []byte(`{"n":3}`)), int64(valid))
	f.Close()
	if recs, err = s.read(p); err != nil || len(recs) != 1 || string(recs[0]) != `{"n":3}` {
		t.Fatalf("second read: %q, %v", recs, err)
	}
}

package audit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestRecordFailsOnFullDisk fills a small tmpfs: Record fails instead of
// acknowledging what is not on disk, and works again once space is freed.
func TestRecordFailsOnFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mounting a tmpfs needs root: run the tests as make test does (as root)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=512k"); err != nil {
		t.Fatalf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	s := newTestStore(t, dir, func(c *Config) { c.FileMaxEvents = 1 << 20 })
	ctx := context.Background()
	acked := 0
	for i := range 5 { // the segment is open when the disk fills
		if err := s.Record(ctx, testInfo(i), Outcome{Status: 200}); err != nil {
			t.Fatal(err)
		}
		acked++
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 64<<10)
	for {
		if _, err := f.Write(big); err != nil {
			break
		}
	}
	f.Close()
	var failed error
	for i := range 10000 {
		info := testInfo(i)
		info.Params["padding"] = strings.Repeat("x", 4000)
		if err := s.Record(ctx, info, Outcome{Status: 200}); err != nil {
			failed = err
			break
		}
		acked++
	}
	if failed == nil {
		t.Fatal("Record kept succeeding on a full disk")
	}
	t.Logf("after %d records: %v", acked, failed)
	os.Remove(filler)
	if err := s.Record(ctx, testInfo(1), Outcome{Status: 200}); err != nil {
		t.Fatalf("Record after space was freed: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(trailRecords(t, dir)); got < acked+1 {
		t.Fatalf("trail holds %d records, want at least %d", got, acked+1)
	}
	mustVerify(t, dir)
}

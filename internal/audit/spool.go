package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The spool is how a process that does not own the trail records events:
// the admin commands that change the registry beside a live server
// (`coffer lifecycle run` expiring images). Spool makes the event durable
// as a file of its own in <audit>/state/spool before the caller acts; the
// Store that owns the trail appends every spooled event (at its start and
// then every spoolPoll) and only then removes the file. An event is lost
// by nobody; a crash between the append and the removal appends it twice
// (the second with the same eventID, which LookupEvents shows once).

const (
	spoolDirName = "spool"
	spoolSuffix  = ".event.json"
	spoolPoll    = time.Second
)

// SpoolDir is the spool of the trail in dir.
func SpoolDir(dir string) string { return filepath.Join(dir, stateDir, spoolDirName) }

// Spool makes ev durable in the spool of the trail in dir, for the Store
// owning it to append. A zero EventID or EventVersion is filled in;
// RecipientAccountID must be set (NewEvent does).
func Spool(dir string, ev *Event) error {
	if ev.RecipientAccountID == "" {
		return errors.New("audit: spool: event without recipientAccountId")
	}
	data, err := encodeRecord(ev, ev.RecipientAccountID)
	if err != nil {
		return err
	}
	sp := SpoolDir(dir)
	if err := mkdirAllSync(sp); err != nil {
		return fmt.Errorf("audit: spool: %w", err)
	}
	name := fmt.Sprintf("%020d-%s%s", time.Now().UnixNano(), ev.EventID, spoolSuffix)
	if err := writeFileAtomic(sp, filepath.Join(sp, name), data, 0o600); err != nil {
		return fmt.Errorf("audit: spool: %w", err)
	}
	return nil
}

// ingestSpool appends the spooled events, oldest first, removing each
// file once its event is durable. It reports how many it appended.
func (s *Store) ingestSpool(ctx context.Context) (int, error) {
	sp := SpoolDir(s.cfg.Dir)
	ents, err := os.ReadDir(sp)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), spoolSuffix) {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	n := 0
	for _, name := range names {
		p := filepath.Join(sp, name)
		data, err := os.ReadFile(p)
		if err != nil {
			return n, err
		}
		var ev Event
		if err := json.Unmarshal(data, &ev); err != nil || ev.EventID == "" {
			// Not an event Spool wrote: keep it out of the trail, and
			// out of the way.
			s.log.Error("audit: a spooled file is not an event; moved aside", "file", name, "error", err)
			if err := os.Rename(p, p+".bad"); err != nil {
				return n, err
			}
			continue
		}
		if err := s.Append(ctx, &ev); err != nil {
			return n, err
		}
		if err := removeSync(p); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// spoolLoop ingests the spool until the store closes.
func (s *Store) spoolLoop() {
	tick := time.NewTicker(spoolPoll)
	defer tick.Stop()
	for {
		if _, err := s.ingestSpool(context.Background()); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Error("audit: appending spooled events failed; retrying", "error", err)
		}
		select {
		case <-s.stopRetention:
			return
		case <-tick.C:
		}
	}
}

package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Retention deletes whole days of log and digest files once they are
// older than Config.RetentionDays. In order, so that every step is safe to
// interrupt:
//
//  1. an AwsServiceEvent "DeleteExpiredAuditFiles" is recorded durably
//     (no record, no deletion);
//  2. a digest is written that declares the new retention horizon (signed,
//     so the verifier accepts files older than it as expired, not
//     deleted);
//  3. the log-file days, then the digest days, are removed, and the index
//     files of the deleted log files.

// RetentionEventName is the eventName of the record of a retention
// deletion.
const RetentionEventName = "DeleteExpiredAuditFiles"

func (s *Store) retentionLoop() {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		if err := s.ApplyRetention(context.Background()); err != nil && !errors.Is(err, ErrClosed) {
			s.log.Error("audit: retention failed; nothing was deleted that is not recorded", "error", err)
		}
		select {
		case <-s.stopRetention:
			return
		case <-tick.C:
		}
	}
}

// ApplyRetention deletes the days of files older than RetentionDays now;
// the store runs it hourly. It does nothing when RetentionDays is 0.
func (s *Store) ApplyRetention(ctx context.Context) error {
	if s.cfg.RetentionDays <= 0 {
		return nil
	}
	s.retention.Lock()
	defer s.retention.Unlock()
	now := s.now().UTC()
	cutoff := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -s.cfg.RetentionDays)
	logDays, logFiles, err := s.expiredDays(logKind, cutoff)
	if err != nil {
		return err
	}
	digestDays, digestFiles, err := s.expiredDays(digestKind, cutoff)
	if err != nil {
		return err
	}
	if len(logDays)+len(digestDays) == 0 {
		return nil
	}
	trailARN := fmt.Sprintf("arn:aws:cloudtrail:%s:%s:trail/%s", s.cfg.Region, s.cfg.AccountID, trailName)
	source := services["cloudtrail"]
	ev := &Event{
		UserIdentity:    UserIdentity{Type: "AWSService", InvokedBy: source},
		EventTime:       formatTime(now),
		EventSource:     source,
		EventName:       RetentionEventName,
		AWSRegion:       s.cfg.Region,
		SourceIPAddress: source,
		UserAgent:       source,
		EventType:       EventTypeServiceEvent,
		ManagementEvent: true,
		EventCategory:   "Management",
		Resources:       []Resource{{ARN: trailARN, AccountID: s.cfg.AccountID, Type: "AWS::CloudTrail::Trail"}},
		ServiceEventDetails: map[string]any{
			"retentionDays": s.cfg.RetentionDays, "deletedBefore": formatTime(cutoff),
			"logFilesDeleted": logFiles, "digestFilesDeleted": digestFiles,
		},
	}
	if err := s.Append(ctx, ev); err != nil {
		return fmt.Errorf("record the retention deletion: %w", err)
	}
	if err := s.sealer.digestNow(ctx, cutoff); err != nil {
		return fmt.Errorf("declare the retention horizon: %w", err)
	}
	for _, d := range append(logDays, digestDays...) {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
		pruneEmpty(filepath.Dir(d), 2)
	}
	if err := s.idx.deleteBefore(cutoff); err != nil {
		s.log.Error("audit: deleting the index files of expired log files failed", "error", err)
	}
	s.log.Info("audit: retention deleted expired files", "before", cutoff, "log_files", logFiles, "digest_files", digestFiles)
	return nil
}

// expiredDays lists the day directories of one kind before cutoff, and
// the files in them.
func (s *Store) expiredDays(kind string, cutoff time.Time) (days []string, files int, err error) {
	root := filepath.Join(s.cfg.Dir, s.tr.account, kind, s.tr.region)
	limit := dayPath(cutoff)
	years, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	for _, y := range years {
		months, _ := os.ReadDir(filepath.Join(root, y.Name()))
		for _, m := range months {
			ds, _ := os.ReadDir(filepath.Join(root, y.Name(), m.Name()))
			for _, d := range ds {
				rel := y.Name() + "/" + m.Name() + "/" + d.Name()
				if len(rel) != len("2006/01/02") || strings.Compare(rel, limit) >= 0 {
					continue
				}
				p := filepath.Join(root, y.Name(), m.Name(), d.Name())
				ents, _ := os.ReadDir(p)
				days = append(days, p)
				files += len(ents)
			}
		}
	}
	return days, files, nil
}

// pruneEmpty removes dir and up to levels-1 parents while they are empty.
func pruneEmpty(dir string, levels int) {
	for range levels {
		if os.Remove(dir) != nil {
			return
		}
		syncDir(filepath.Dir(dir))
		dir = filepath.Dir(dir)
	}
}

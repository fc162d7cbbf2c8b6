package audit

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"
)

// A segment is the write-ahead log of the log file being filled: a
// sequence of frames, each
//
//	length uint32 (big endian) | CRC-32C of the payload uint32 | payload
//
// The first frame's payload is the segment header (JSON), every other one
// a CloudTrail record (JSON). A group commit appends the frames of every
// waiting record in one write and one fsync. After a crash the valid
// prefix is kept (a torn last frame fails its length or CRC check and
// belonged to a record that was never acknowledged) and sealed into a log
// file.
const (
	segmentFormat = "coffer-audit-wal/1"
	frameHeader   = 8
	maxFrame      = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type segHeader struct {
	Format  string    `json:"format"`
	Unique  string    `json:"unique"`
	Created time.Time `json:"created"`
	Account string    `json:"account"`
	Region  string    `json:"region"`
}

func appendFrame(buf, payload []byte) []byte {
	var h [frameHeader]byte
	binary.BigEndian.PutUint32(h[0:], uint32(len(payload)))
	binary.BigEndian.PutUint32(h[4:], crc32.Checksum(payload, castagnoli))
	return append(append(buf, h[:]...), payload...)
}

// parseFrames returns the payloads of the valid frames at the start of
// data and the length of that valid prefix.
func parseFrames(data []byte) (frames [][]byte, valid int) {
	for {
		rest := data[valid:]
		if len(rest) < frameHeader {
			return frames, valid
		}
		n := int(binary.BigEndian.Uint32(rest[0:]))
		// No record is empty: a zero length is the preallocated tail.
		if n == 0 || n > maxFrame || len(rest)-frameHeader < n {
			return frames, valid
		}
		payload := rest[frameHeader : frameHeader+n]
		if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(rest[4:]) {
			return frames, valid
		}
		frames = append(frames, payload)
		valid += frameHeader + n
	}
}

// segment is an open write-ahead segment; only the committer touches it.
type segment struct {
	f       *os.File
	path    string
	hdr     segHeader
	size    int64 // bytes of valid, durable frames
	count   int   // records
	lastSeq uint64
	// oldest and newest eventTime of the records, as eventSpan finds them.
	oldest, newest string
	opened         time.Time // wall clock, for FileMaxAge
}

// createSegment creates a segment file with its header, durably: from a
// spare when one is ready (see spares), else a new file.
func createSegment(dir string, hdr segHeader, sp *spares) (*segment, error) {
	p := filepath.Join(dir, segmentName(hdr.Created, hdr.Unique))
	h, _ := json.Marshal(hdr)
	buf := appendFrame(nil, h)
	if sp != nil {
		if f, spare := sp.take(); f != nil {
			if err := adoptSpare(f, spare, p, buf); err != nil {
				f.Close()
				os.Remove(spare)
				os.Remove(p)
				return nil, fmt.Errorf("create segment: %w", err)
			}
			return &segment{f: f, path: p, hdr: hdr, size: int64(len(buf)), opened: time.Now()}, nil
		}
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	if _, err = f.Write(buf); err == nil {
		if err = f.Sync(); err == nil {
			err = syncDir(dir)
		}
	}
	if err != nil {
		f.Close()
		os.Remove(p)
		return nil, fmt.Errorf("create segment: %w", err)
	}
	return &segment{f: f, path: p, hdr: hdr, size: int64(len(buf)), opened: time.Now()}, nil
}

// write appends frames and makes them durable.
func (s *segment) write(frames []byte) error {
	if _, err := s.f.WriteAt(frames, s.size); err != nil {
		return err
	}
	if err := datasync(s.f); err != nil {
		return err
	}
	s.size += int64(len(frames))
	return nil
}

// discardFailed undoes a failed write as far as it can: it cuts the file
// back to its durable size. The records of a failed group commit were
// refused; this keeps them out of the trail unless the disk took them
// anyway.
func (s *segment) discardFailed() {
	if err := s.f.Truncate(s.size); err == nil {
		_ = s.f.Sync()
	}
}

func (s *segment) close() error { return s.f.Close() }

var errBadSegment = errors.New("audit: segment has no valid header")

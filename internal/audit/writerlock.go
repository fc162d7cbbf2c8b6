package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrInUse reports that a process (a running server) holds the trail's
// writer lock.
var ErrInUse = errors.New("audit: the trail is in use by another process")

// LockWriter takes the trail's writer lock in dir (Dir of a data
// directory) without opening the trail, as the server does on start, so
// an offline admin command (coffer migrate) can prove that no server is
// running on the data directory; unlock releases it. A missing dir means
// no server has ever written there: nothing to lock, nil error.
func LockWriter(dir string) (unlock func(), err error) {
	state := filepath.Join(dir, stateDir)
	if _, err := os.Stat(state); errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	f, err := lockDir(filepath.Join(state, "lock"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInUse, err)
	}
	return func() { unlockDir(f) }, nil
}

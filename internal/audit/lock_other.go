//go:build !unix

package audit

import "os"

// lockDir opens the lock file; without flock the single-writer rule is
// the operator's to keep.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

func unlockDir(f *os.File) {
	if f != nil {
		f.Close()
	}
}

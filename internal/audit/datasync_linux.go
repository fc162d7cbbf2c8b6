package audit

import (
	"os"
	"syscall"
)

// datasync makes f's data durable, with the metadata needed to read it
// back (fdatasync(2)): on a preallocated segment that is the data alone.
func datasync(f *os.File) error {
	if skipSync {
		return nil
	}
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

// freeBytes is the space left to unprivileged writers on dir's file
// system.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}

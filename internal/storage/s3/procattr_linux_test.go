package s3

import "syscall"

func init() {
	// Pdeathsig: the kernel kills versitygw when the test binary exits,
	// however it exits.
	sysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

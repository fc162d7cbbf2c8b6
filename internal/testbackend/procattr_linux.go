package testbackend

import "syscall"

func init() {
	// Pdeathsig: the kernel kills versitygw when the thread that started
	// it exits, however the process ends.
	sysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

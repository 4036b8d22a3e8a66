//go:build linux

package pgtest

import "syscall"

// sysProcAttr makes the kernel SIGKILL postgres when the thread that
// started it dies, which for Go means when the test binary exits or panics.
// (Go only ends a thread whose goroutine exits while locked to it, which
// the testing package never does.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

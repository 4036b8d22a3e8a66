//go:build linux

package redistest

import "syscall"

// sysProcAttr makes the kernel SIGKILL redis-server when the thread that
// started it dies, which for Go means when the test binary exits or panics.
// (Go only ends a thread whose goroutine exits while locked to it, which
// the testing package never does.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

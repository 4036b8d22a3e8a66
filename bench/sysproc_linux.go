//go:build linux

package main

import "syscall"

// sysProcAttr makes the kernel SIGKILL a redis-server when the thread that
// started it dies, which for Go means when this process exits or crashes
// (Go ends a thread only when a goroutine locked to it exits, which this
// command never does), so no server outlives the run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

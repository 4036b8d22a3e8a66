//go:build !linux

package pgtest

import "syscall"

// sysProcAttr returns nil: outside Linux a server killed by nothing but
// t.Cleanup may outlive a test binary that crashes.
func sysProcAttr() *syscall.SysProcAttr { return nil }

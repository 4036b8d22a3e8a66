//go:build !linux

package main

import "syscall"

// sysProcAttr has no parent-death signal off Linux; stop and the signal
// handler in main still end the servers on every ordinary exit.
func sysProcAttr() *syscall.SysProcAttr { return nil }

package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: the bench starts
// many (clients, waiters, workers) and must stop them all.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

package locked_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine running, such as
// a lease's renewal after Close (invariant 6).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

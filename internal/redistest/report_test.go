package redistest

import "testing"

func TestPackageOf(t *testing.T) {
	for fn, want := range map[string]string{
		"github.com/lockproof/lockproof/container_test.TestMain":      "github.com/lockproof/lockproof/container",
		"github.com/lockproof/lockproof/internal/redistest.TestMain":  "github.com/lockproof/lockproof/internal/redistest",
		"github.com/lockproof/lockproof/examples/bank.TestMain.func1": "github.com/lockproof/lockproof/examples/bank",
		"main.TestMain": "main",
	} {
		if got := packageOf(fn); got != want {
			t.Errorf("packageOf(%q) = %q, want %q", fn, got, want)
		}
	}
}

func TestSkippedCountsTestsOnce(t *testing.T) {
	before := Skipped()
	parent := t
	note := func(t *testing.T) {
		noteSkip(t)
		name := t.Name()
		parent.Cleanup(func() { skippedTests.Delete(name) }) // leave the count to real skips
	}
	t.Run("a", func(t *testing.T) { note(t); note(t) })
	t.Run("b", func(t *testing.T) { note(t) })
	if got := Skipped() - before; got != 2 {
		t.Fatalf("Skipped grew by %d, want 2", got)
	}
}

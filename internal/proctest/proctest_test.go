package proctest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/lockproof/lockproof/internal/proctest"
)

// recorder collects what Run reports instead of failing the real test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	dir := t.TempDir()
	ok := &recorder{TB: t}
	proctest.Run(ctx, ok, 3, "TestWorker", "PROCTEST_DIR="+dir)
	if len(ok.errs) != 0 {
		t.Fatalf("workers that succeed reported %q", ok.errs)
	}
	ran, err := os.ReadDir(dir)
	if err != nil || len(ran) != 3 {
		t.Fatalf("%d workers left a mark (%v), want 3: each must run once", len(ran), err)
	}

	failing := &recorder{TB: t}
	proctest.Run(ctx, failing, 2, "TestWorker", "PROCTEST_DIR="+t.TempDir(), "PROCTEST_FAIL=1")
	if len(failing.errs) != 2 {
		t.Fatalf("2 failing workers gave %d reports: %q", len(failing.errs), failing.errs)
	}
}

// TestWorker is the worker of TestRun; run directly, it does nothing.
func TestWorker(t *testing.T) {
	if !proctest.IsWorker(t.Name()) {
		return
	}
	mark := filepath.Join(os.Getenv("PROCTEST_DIR"), strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(mark, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("PROCTEST_FAIL") == "1" {
		t.Fatal("asked to fail")
	}
}

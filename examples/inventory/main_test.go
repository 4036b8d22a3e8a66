package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/internal/redistest"
)

// TestMain runs run() itself when -procs started this test binary as a
// worker process, as the real program does.
func TestMain(m *testing.M) {
	if os.Getenv(envWorker) != "" {
		if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "inventory worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(redistest.Reporting(m))
}

func runInventory(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("inventory %v: %v\n%s", args, err, out.String())
	}
	if !strings.Contains(out.String(), "never oversold") {
		t.Fatalf("inventory %v did not report its check:\n%s", args, out.String())
	}
	return out.String()
}

func TestMemory(t *testing.T) {
	runInventory(t, "-stock", "2000", "-workers", "16")
}

func TestRedis(t *testing.T) {
	runInventory(t, "-redis", redistest.Server(t).Addr(), "-stock", "100")
}

func TestRedisProcesses(t *testing.T) {
	out := runInventory(t, "-redis", redistest.Server(t).Addr(), "-procs", "3", "-workers", "4", "-stock", "120")
	if !strings.Contains(out, "across 3 processes") {
		t.Fatalf("not run in 3 processes:\n%s", out)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-stock", "0"}, {"-workers", "0"}, {"-procs", "2"}, {"-procs", "-1"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("inventory %v: no error", args)
		}
	}
}

func TestParseReport(t *testing.T) {
	if u, o, err := parseReport("noise\nreserved 7 3\n"); err != nil || u != 7 || o != 3 {
		t.Fatalf("parseReport = %d, %d, %v", u, o, err)
	}
	if _, _, err := parseReport("PASS\n"); err == nil {
		t.Fatal("parseReport accepted output without a report")
	}
}
